"""The SageMaker SDK's model-filter language, evaluated against our catalog.

Users already write ``list_jumpstart_models(filter=And("task == llm", "framework == huggingface"))``
against ``sagemaker.jumpstart``; this module accepts the same strings and operators with the same
three-valued logic (a key a model does not have is UNKNOWN, and UNKNOWN models are left out unless
``list_incomplete_models=True``), so that code runs unchanged without importing ``sagemaker``.

Two deliberate differences from ``sagemaker.jumpstart.filters``:
- ``in`` / ``not in`` accept unquoted lists (``instance_type in [ml.g5.2xlarge, ml.g5.12xlarge]``);
  the SDK would fall back to a substring test on the raw text there.
- list-valued fields (``instance_type``, the supported instance types) match when any element
  matches; the SDK evaluates ``in`` against a list as false.
"""

from __future__ import annotations

from ast import literal_eval
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Mapping, Union

from deploy.catalog import Catalog, ModelSpec, load_catalog, version_key
from deploy.errors import FilterSyntaxError


class BooleanValue(str, Enum):
    """Result of evaluating a filter for one model (UNKNOWN: the model lacks the key)."""

    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"


class FilterOperator(str, Enum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    NOT_IN = "not_in"
    INCLUDES = "includes"
    NOT_INCLUDES = "not_includes"
    BEGINS_WITH = "begins_with"
    ENDS_WITH = "ends_with"


OPERATOR_SPELLINGS = {
    FilterOperator.EQUALS: ("===", "==", "equals", "is"),
    FilterOperator.NOT_EQUALS: ("!==", "!=", "not equals", "is not"),
    FilterOperator.IN: ("in",),
    FilterOperator.NOT_IN: ("not in",),
    FilterOperator.INCLUDES: ("includes", "contains"),
    FilterOperator.NOT_INCLUDES: ("not includes", "not contains"),
    FilterOperator.BEGINS_WITH: ("begins with", "starts with"),
    FilterOperator.ENDS_WITH: ("ends with",),
}

# The SDK's parse order: longer/negated spellings first so "not in" is not read as "in".
_PARSE_ORDER = (FilterOperator.BEGINS_WITH, FilterOperator.ENDS_WITH, FilterOperator.NOT_INCLUDES,
                FilterOperator.INCLUDES, FilterOperator.NOT_EQUALS, FilterOperator.NOT_IN,
                FilterOperator.EQUALS, FilterOperator.IN)
_NEGATED = {FilterOperator.NOT_EQUALS: FilterOperator.EQUALS, FilterOperator.NOT_IN: FilterOperator.IN,
            FilterOperator.NOT_INCLUDES: FilterOperator.INCLUDES}


def _padded(spelling: str) -> str:
    """Word operators need surrounding spaces, or "instance_type" would split at "in"."""
    return f" {spelling} " if any(char.isalpha() for char in spelling) else spelling


def _negate(value: BooleanValue) -> BooleanValue:
    return {BooleanValue.TRUE: BooleanValue.FALSE,
            BooleanValue.FALSE: BooleanValue.TRUE}.get(value, value)


def _parse_list(text: str) -> list[str]:
    """``"[a, 'b']"`` or ``"a, b"`` -> ``["a", "b"]``; Python literals are honoured first."""
    try:
        value = literal_eval(text)
        if isinstance(value, (list, tuple, set)):
            return [str(item) for item in value]
    except (ValueError, SyntaxError):
        pass
    inner = text.strip().removeprefix("[").removesuffix("]")
    return [item.strip().strip("'\"") for item in inner.split(",") if item.strip()]


def _as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class ModelFilter:
    """One comparison, e.g. ``task == llm`` is ``ModelFilter("task", "llm", EQUALS)``."""

    key: str
    value: str
    operator: FilterOperator

    def evaluate(self, record: Mapping[str, Any]) -> BooleanValue:
        if self.key not in record or record[self.key] is None:
            return BooleanValue.UNKNOWN
        if self.operator in _NEGATED:
            positive = ModelFilter(self.key, self.value, _NEGATED[self.operator])
            return _negate(positive.evaluate(record))
        field = record[self.key]
        candidates = [_as_text(item) for item in field] if isinstance(field, (list, tuple)) \
            else [_as_text(field)]
        return BooleanValue.TRUE if any(self._matches(c) for c in candidates) else BooleanValue.FALSE

    def _matches(self, candidate: str) -> bool:
        value = self.value
        if self.operator is FilterOperator.EQUALS:
            return candidate.lower() == value.lower() if value.lower() in ("true", "false") \
                else candidate == value
        if self.operator is FilterOperator.IN:
            return candidate in _parse_list(value)
        if self.operator is FilterOperator.INCLUDES:
            return value in candidate
        if self.operator is FilterOperator.BEGINS_WITH:
            return candidate.startswith(value)
        return candidate.endswith(value)  # ENDS_WITH, the only operator left


def parse_filter_string(text: str) -> ModelFilter:
    """Parse ``"key <op> value"``; raises FilterSyntaxError when no operator splits it in two."""
    for operator in _PARSE_ORDER:
        for spelling in OPERATOR_SPELLINGS[operator]:
            parts = text.split(_padded(spelling))
            if len(parts) == 2 and parts[0].strip() and parts[1].strip():
                return ModelFilter(parts[0].strip(), parts[1].strip(), operator)
    spellings = sorted({s for group in OPERATOR_SPELLINGS.values() for s in group})
    raise FilterSyntaxError(f"Cannot parse filter {text!r}: expected 'key OPERATOR value' with "
                            f"one of {', '.join(spellings)} (e.g. 'task == llm').")


class Operator:
    """A node of a filter expression; ``evaluate`` returns a BooleanValue for one model record."""

    def evaluate(self, record: Mapping[str, Any]) -> BooleanValue:
        raise NotImplementedError

    def keys(self) -> frozenset[str]:
        """The record keys this expression compares."""
        return frozenset()


FilterLike = Union[Operator, str]


def as_operator(operand: FilterLike) -> Operator:
    """Strings become comparisons; ``"true"``/``"false"``/``"unknown"`` become constants (as in the SDK)."""
    if isinstance(operand, Operator):
        return operand
    if isinstance(operand, str):
        if operand.strip().lower() in {value.value for value in BooleanValue}:
            return Constant(BooleanValue(operand.strip().lower()))
        return Identity(operand)
    raise FilterSyntaxError(f"Filter operand {operand!r} is neither a string nor a filter operator.")


class Constant(Operator):
    def __init__(self, value: BooleanValue):
        self.value = BooleanValue(value)

    def evaluate(self, record: Mapping[str, Any]) -> BooleanValue:
        return self.value


class Identity(Operator):
    """A single comparison string such as ``"task == llm"``."""

    def __init__(self, operand: FilterLike):
        self.operand = parse_filter_string(operand) if isinstance(operand, str) else operand

    def evaluate(self, record: Mapping[str, Any]) -> BooleanValue:
        return self.operand.evaluate(record)

    def keys(self) -> frozenset[str]:
        return frozenset({self.operand.key})


class And(Operator):
    """FALSE if any operand is FALSE, else UNKNOWN if any is UNKNOWN, else TRUE."""

    def __init__(self, *operands: FilterLike):
        self.operands = [as_operator(operand) for operand in operands]

    def evaluate(self, record: Mapping[str, Any]) -> BooleanValue:
        values = [operand.evaluate(record) for operand in self.operands]
        if BooleanValue.FALSE in values:
            return BooleanValue.FALSE
        return BooleanValue.UNKNOWN if BooleanValue.UNKNOWN in values else BooleanValue.TRUE

    def keys(self) -> frozenset[str]:
        return frozenset().union(*(operand.keys() for operand in self.operands))


class Or(Operator):
    """TRUE if any operand is TRUE, else UNKNOWN if any is UNKNOWN, else FALSE."""

    def __init__(self, *operands: FilterLike):
        self.operands = [as_operator(operand) for operand in operands]

    def evaluate(self, record: Mapping[str, Any]) -> BooleanValue:
        values = [operand.evaluate(record) for operand in self.operands]
        if BooleanValue.TRUE in values:
            return BooleanValue.TRUE
        return BooleanValue.UNKNOWN if BooleanValue.UNKNOWN in values else BooleanValue.FALSE

    def keys(self) -> frozenset[str]:
        return frozenset().union(*(operand.keys() for operand in self.operands))


class Not(Operator):
    def __init__(self, operand: FilterLike):
        self.operand = as_operator(operand)

    def evaluate(self, record: Mapping[str, Any]) -> BooleanValue:
        return _negate(self.operand.evaluate(record))

    def keys(self) -> frozenset[str]:
        return self.operand.keys()


def filter_record(spec: ModelSpec) -> dict[str, Any]:
    """The keys a filter can test, including the SDK's spec field names as aliases."""
    instance_types = list(spec.supported_instance_types)
    return {
        "model_id": spec.model_id, "version": spec.version, "task": spec.task.value,
        "framework": spec.framework.value, "hf_model_id": spec.hf_model_id, "gated": spec.gated,
        "instance_type": instance_types, "supported_inference_instance_types": instance_types,
        "default_instance_type": spec.default_instance_type,
        "default_inference_instance_type": spec.default_instance_type,
    }


def check_filter_keys(filter: FilterLike, catalog: Catalog | None = None) -> None:  # noqa: A002
    """Raise FilterSyntaxError naming a key no catalog record has (for the command line).

    The SDK's semantics make such a key UNKNOWN, so a typo lists nothing and looks like "no
    models"; ``list_jumpstart_models`` keeps those semantics, the CLI asks for this check first.
    """
    known = set().union(*(filter_record(spec) for spec in (catalog or load_catalog()).specs))
    unknown = sorted(as_operator(filter).keys() - known)
    if unknown:
        raise FilterSyntaxError(f"Unknown filter key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")


EVERY_MODEL = Constant(BooleanValue.TRUE)  # the SDK's default filter


def list_jumpstart_models(filter: FilterLike = EVERY_MODEL,  # noqa: A002 (SDK name)
                          list_incomplete_models: bool = False, list_old_models: bool = False,
                          list_versions: bool = False, catalog: Catalog | None = None,
                          ) -> list[str] | list[tuple[str, str]]:
    """Sorted model ids matching ``filter`` (``(id, version)`` pairs with ``list_versions``).

    Mirrors ``sagemaker.jumpstart.notebook_utils.list_jumpstart_models``: a model is listed when
    any of its versions matches; with ``list_versions`` only the newest matching version is
    returned unless ``list_old_models`` is set.
    """
    operator = as_operator(filter)
    catalog = catalog or load_catalog()
    accepted = {BooleanValue.TRUE, BooleanValue.UNKNOWN} if list_incomplete_models \
        else {BooleanValue.TRUE}
    matches: dict[str, list[str]] = {}
    for spec in catalog.specs:
        if operator.evaluate(filter_record(spec)) in accepted:
            matches.setdefault(spec.model_id, []).append(spec.version)
    if not list_versions:
        return sorted(matches)
    pairs: Iterable[tuple[str, str]] = (
        (model_id, version) for model_id, versions in matches.items()
        for version in (versions if list_old_models else [max(versions, key=version_key)]))
    return sorted(pairs, key=lambda pair: (pair[0], version_key(pair[1])))
