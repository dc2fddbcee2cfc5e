"""``heptagon trigger``: small, fast models for a Level-1-style trigger.

- :mod:`.compression`: fixed-point quantisation-aware training (``ap_fixed<W,I>``),
  magnitude pruning, post-training int8 of the ONNX export;
- :mod:`.hls`: hls4ml conversion and its bit-accurate C++ emulation, resource estimates;
- :mod:`.latency`: measured ONNX Runtime latency and throughput, fp32 vs int8;
- :mod:`.features`: the 16 high-level jet features of the hls4ml jet-tagging benchmark;
- :mod:`.loop`: the compact in-memory training loop they share (best validation epoch);
- :mod:`.workflow`: ``trigger train | hls | topup``: run directories of the MLP (QAT,
  pruning, hls4ml emulation, EWC / replay top-ups with
  :mod:`heptagon.train.continual`'s EWC and replay memory).
"""
