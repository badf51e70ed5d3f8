"""The request room: the typed request every dialect produces and every engine consumes."""

from .adapter import AdapterRef, AdapterSelection, AdapterSpec
from .grammar import ANY_OBJECT, COMPACT_JSON, JSON, LARK, REGEX, GrammarSpec
from .model import TGI_NAMES, FieldNames, GenerateRequest, RequestLimits, SamplingParams, ValidRequest
from .rules import Parameters, build_request
from .sagemaker import NO_HEADERS, SageMakerHeaders
from .session import SessionPin

__all__ = ["AdapterRef", "AdapterSelection", "AdapterSpec", "ANY_OBJECT", "COMPACT_JSON",
           "JSON", "LARK", "REGEX", "GrammarSpec", "TGI_NAMES", "FieldNames", "GenerateRequest", "RequestLimits",
           "SamplingParams", "ValidRequest", "Parameters", "build_request", "NO_HEADERS", "SageMakerHeaders",
           "SessionPin"]
