"""Turn pydantic's validation errors into the API's error details: one entry per bad field, with its location and
a reason in zh-CN and English. Input values are never echoed back (they may be personal data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_LOCATIONS = {"body", "query", "path", "header", "cookie"}

# zh / en reasons for pydantic's built-in error types; `{...}` are filled from the error's context.
_REASONS: dict[str, str] = {
    "missing": "必填项 / field required",
    "extra_forbidden": "不允许的字段 / unknown field",
    "string_type": "应为字符串 / must be a string",
    "string_too_short": "长度至少为 {min_length} / must have at least {min_length} characters",
    "string_too_long": "长度不能超过 {max_length} / must have at most {max_length} characters",
    "string_nul": "不能包含 NUL 字符 / must not contain NUL characters",
    "string_pattern_mismatch": "格式不正确 / has the wrong format",
    "int_type": "应为整数 / must be an integer",
    "int_parsing": "应为整数 / must be an integer",
    "int_from_float": "应为整数 / must be an integer",
    "float_type": "应为数字 / must be a number",
    "float_parsing": "应为数字 / must be a number",
    "finite_number": "应为有限数字 / must be a finite number",
    "bool_type": "应为 true 或 false / must be true or false",
    "bool_parsing": "应为 true 或 false / must be true or false",
    "greater_than_equal": "不能小于 {ge} / must be at least {ge}",
    "greater_than": "必须大于 {gt} / must be greater than {gt}",
    "less_than_equal": "不能大于 {le} / must be at most {le}",
    "less_than": "必须小于 {lt} / must be less than {lt}",
    "enum": "取值应为 {expected} 之一 / must be one of {expected}",
    "literal_error": "取值应为 {expected} 之一 / must be one of {expected}",
    "datetime_type": "应为 ISO 8601 时间 / must be an ISO 8601 date-time",
    "datetime_parsing": "应为 ISO 8601 时间 / must be an ISO 8601 date-time",
    "datetime_from_date_parsing": "应为 ISO 8601 时间 / must be an ISO 8601 date-time",
    "timezone_aware": "时间须带时区偏移,如 +08:00 / must carry a UTC offset such as +08:00",
    "list_type": "应为数组 / must be an array",
    "set_type": "应为数组 / must be an array",
    "frozen_set_type": "应为数组 / must be an array",
    "model_type": "应为对象 / must be an object",
    "model_attributes_type": "应为对象 / must be an object",
    "dict_type": "应为对象 / must be an object",
    "json_invalid": "不是合法的 JSON / is not valid JSON",
    "json_type": "不是合法的 JSON / is not valid JSON",
    "too_short": "至少需要 {min_length} 项 / must have at least {min_length} items",
    "too_long": "不能超过 {max_length} 项 / must have at most {max_length} items",
    "uuid_parsing": "应为 UUID / must be a UUID",
    "url_parsing": "应为 URL / must be a URL",
    "url_scheme": "URL 协议应为 {expected_schemes} / URL scheme must be {expected_schemes}",
}


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """`[{"field": "enterprise.credit_code", "location": "body", "type": "...", "reason": "zh / en"}, ...]`."""
    details = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        location = loc.pop(0) if loc and loc[0] in _LOCATIONS else "body"
        details.append({
            "field": ".".join(loc),
            "location": location,
            "type": str(error.get("type", "value_error")),
            "reason": _reason(error),
        })
    return details


def _reason(error: Mapping[str, Any]) -> str:
    template = _REASONS.get(str(error.get("type")))
    if template is None:
        message = str(error.get("msg", ""))
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return message if " / " in message else f"输入无效 / {message}"
    context = {key: str(value) for key, value in (error.get("ctx") or {}).items()}
    try:
        return template.format(**context)
    except (KeyError, IndexError):
        return template.split(" {", 1)[0]
