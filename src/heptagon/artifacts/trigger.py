"""``RUN/trigger.json`` of ``heptagon trigger train | topup`` and ``DIR/hls.json`` of
``heptagon trigger hls``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from heptagon.artifacts.base import Artifact, Record

__all__ = [
    "HlsComparison",
    "LayerResourceRecord",
    "LayerTypes",
    "TriggerCondition",
    "TriggerHlsFile",
    "TriggerOptions",
    "TriggerRunFile",
    "TriggerScores",
]


class TriggerOptions(Record):
    """What ``heptagon trigger train`` was asked for."""

    hidden: tuple[int, ...] = Field(description="widths of the MLP's hidden layers")
    epochs: int = Field(description="float training epochs (best validation epoch kept)")
    qat_epochs: int = Field(description="epochs of QAT and of each pruning step's fine-tuning")
    lr: float = Field(description="Adam learning rate of the float training")
    qat_lr: float = Field(description="learning rate of QAT and pruning fine-tuning")
    batch_size: int
    seed: int = Field(description="initialisation, split and batch order")
    precision: str | None = Field(description="ap_fixed type of every layer; null: float")
    result_precision: str | None = Field(description="type of layer results (default: precision)")
    input_precision: str | None = Field(description="type the first layer's input is rounded to")
    layer_precision: dict[str, str] = Field(description="'LAYER[:PART]' -> ap_fixed overrides")
    prune_to: float = Field(description="fraction of weights pruned per layer (0: none)")
    prune_steps: int = Field(description="pruning steps (geometric schedule of the kept part)")
    memory: int = Field(description="jets kept for replay in later top-ups")


class LayerTypes(Record):
    """The fixed-point types of one dense layer (hls4ml type strings)."""

    weight: str
    bias: str
    result: str
    input: str | None = None


class TriggerScores(Record):
    """Accuracy and macro one-vs-rest AUC on a test set."""

    accuracy: float
    auc: float
    jets: int


class TriggerCondition(Record):
    """A features file the run was trained or topped up on, and how it was split."""

    features: str = Field(description="absolute path of the features Parquet file")
    split: Literal["train_val_test", "topup_test"] = Field(
        description="60/20/20 train/validation/test, or 50/50 top-up/test (seeded)"
    )
    strategy: str = Field(description="'train', or the top-up's 'finetune' / 'ewc' / 'replay'")


class TriggerRunFile(Artifact):
    """A trigger MLP run: options, inputs, types, and its scores (float vs quantised)."""

    WHAT: ClassVar[str] = "trigger run"

    options: TriggerOptions
    classes: list[str] = Field(description="label branches, in the order of the outputs")
    features: list[str] = Field(description="input columns, in order")
    mean: list[float] = Field(description="standardisation: training mean per feature")
    std: list[float] = Field(description="standardisation: training width per feature")
    layers: dict[str, LayerTypes] = Field(description="fixed-point types per layer (QAT runs)")
    sparsity: float = Field(description="fraction of zero weights in the dense layers")
    float_scores: TriggerScores | None = Field(
        description="the float model on the first condition's test set (train runs)"
    )
    scores: dict[str, TriggerScores] = Field(
        description="the final (quantised) model on every condition's test set, by file stem"
    )
    conditions: list[TriggerCondition]
    history: list[dict[str, str | int | float]] = Field(description="one record per epoch")


class LayerResourceRecord(Record):
    """heptagon's estimate of one layer's cost per inference (not a synthesis result)."""

    name: str
    multiplications: int
    bit_operations: float
    weight_bits: int
    input_bits: int


class HlsComparison(Record):
    """The hls4ml C++ emulation against the torch fixed-point model on the test jets."""

    jets: int
    accuracy_emulated: float
    accuracy_torch: float
    argmax_agreement: float
    max_abs_logit_diff: float
    lsb: float = Field(description="the step of the last layer's result type")
    bit_exact: bool


class TriggerHlsFile(Artifact):
    """``heptagon trigger hls``: the emulation's agreement and resource estimates."""

    WHAT: ClassVar[str] = "trigger hls report"

    run: str = Field(description="the run directory converted")
    hls4ml_version: str
    backend: str
    project: str = Field(description="the hls4ml project directory")
    comparison: HlsComparison
    resources: list[LayerResourceRecord] = Field(description="heptagon's estimates")
    hls4ml_resources: dict[str, float] | None = Field(
        description="hls4ml's own report; null where its backend needs Vivado / Vitis HLS"
    )
    hls4ml_resources_note: str
