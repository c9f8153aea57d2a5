"""The vendors' published API documents, read as checks of requests and answers.

A document (OpenAPI 3.x; Swagger 2.0 for Azure OpenAI's dated API) becomes a :class:`Contract`: its operations
(method and path template), what each takes (path and query parameters, a JSON or multipart body) and what each
answers (a schema per status). Schemas are checked with ``jsonschema`` (draft 2020-12) once :func:`normalize` has
read the documents' older keywords as their authors meant them:

- OpenAPI 3.0's ``nullable: true``, still used in the 3.1 documents of OpenAI and Together AI, allows ``null``;
- OpenAPI 3.0's boolean ``exclusiveMinimum``/``exclusiveMaximum`` become the numeric forms of JSON Schema;
- Swagger 2.0 has no ``null``: an optional property may be ``null`` there (what Azure sends for a value it does
  not have, as its own descriptions say: ``estimated_finish`` "will be null if the fine-tuning job is not running").

Enumerations stay closed, Microsoft's ``x-ms-enum`` ``modelAsString`` included: a client must tolerate new words,
but the emulator must only speak the documented ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

#: Keywords of a Swagger 2.0 parameter that are a schema (the rest say where the parameter goes).
_PARAMETER_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "enum",
        "default",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "multipleOf",
    }
)
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_JSON = "application/json"
_MULTIPART = "multipart/form-data"
#: What a file part of a multipart body stands for when the form is checked (its bytes are the training data).
FILE_PART = "<file>"


class Check:
    """One schema, compiled once, that lists the ways an instance breaks it.

    :param schema: the JSON Schema (a ``$ref`` into the contract's document, or a schema of its own)
    :param registry: where the document's ``$ref`` point
    """

    def __init__(self, schema: Mapping[str, Any], registry: Registry[Any]) -> None:
        self._validator = Draft202012Validator(schema, registry=registry)

    def errors(self, instance: object, *, ignore_required: bool = False) -> list[str]:
        """What is wrong with ``instance``, one line per error (``ignore_required``: absent fields are not)."""
        found = []
        for error in self._validator.iter_errors(instance):
            if ignore_required and error.validator == "required":
                continue
            where = "/".join(str(part) for part in error.absolute_path) or "(top)"
            found.append(f"{where}: {_short(error.message)}")
        return found


@dataclass(frozen=True)
class Parameter:
    """A path or query parameter.

    :param name: its name
    :param location: ``path`` or ``query``
    :param required: whether a request must carry it
    :param check: its schema
    :param types: the JSON types its schema declares (a query string is read as one of them)
    :param deep_object: whether it is sent as ``name[key]=value`` pairs (OpenAPI's ``deepObject`` style)
    """

    name: str
    location: str
    required: bool
    check: Check
    types: frozenset[str]
    deep_object: bool = False


@dataclass(frozen=True)
class Body:
    """What an operation takes as its body: a JSON document or a multipart form.

    :param media_type: ``application/json`` or ``multipart/form-data``
    :param required: whether a request must have one
    :param check: its schema
    """

    media_type: str
    required: bool
    check: Check


@dataclass(frozen=True)
class Answer:
    """One documented answer of an operation.

    :param media_types: the content types it is documented with
    :param check: the schema of its JSON body (``None``: none documented)
    """

    media_types: tuple[str, ...]
    check: Check | None


@dataclass(frozen=True)
class Operation:
    """One method on one path template of the document."""

    method: str
    template: str
    pattern: re.Pattern[str]
    parameters: tuple[Parameter, ...]
    body: Body | None
    answers: Mapping[str, Answer]

    @property
    def literal_segments(self) -> int:
        return sum(1 for segment in self.template.split("/") if segment and "{" not in segment)


@dataclass
class Contract:
    """A vendor's published document, ready to check exchanges with.

    :param name: what the report calls it (``openai``, ``azure-2024-10-21``, ``together``)
    :param document: the parsed document
    :param source: where it comes from (repository, path, commit), for the report
    :param error_schema: JSON pointer of the vendor's error object, which checks error answers an operation does not
        describe (``None``: the document has none; then ``fallback_error`` if given)
    :param fallback_error: an error schema from elsewhere, with its source in a comment where it is defined
    """

    name: str
    document: Mapping[str, Any]
    source: str
    error_schema: str | None = None
    fallback_error: Mapping[str, Any] | None = None
    operations: list[Operation] = field(init=False)
    error_check: Check | None = field(init=False)

    def __post_init__(self) -> None:
        swagger = str(self.document.get("swagger", "")).startswith("2")
        self.document = normalize(self.document, swagger=swagger)
        self._uri = f"urn:ft-contract:{self.name}"
        resource: Resource[Any] = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(self._uri, resource)
        self.operations = sorted(
            _operations(self, swagger=swagger), key=lambda op: (-op.literal_segments, op.template, op.method)
        )
        if self.error_schema is not None:
            self.error_check = self.check_at(self.error_schema)
        elif self.fallback_error is not None:
            self.error_check = Check(self.fallback_error, self._registry)
        else:
            self.error_check = None

    # -- building --------------------------------------------------------------------------------------------

    def check_at(self, pointer: str) -> Check:
        """The check of the schema at ``pointer`` (``/components/schemas/X``) in the document."""
        return Check({"$ref": f"{self._uri}#{pointer}"}, self._registry)

    def check_of(self, schema: Mapping[str, Any]) -> Check:
        """The check of a schema built here (a Swagger parameter's); its ``$ref`` point into the document."""
        return Check(_anchored(schema, self._uri), self._registry)

    def resolve(self, node: Mapping[str, Any], pointer: str) -> tuple[Mapping[str, Any], str]:
        """``node`` (found at ``pointer``), or what its ``$ref`` points to and where."""
        seen = 0
        while "$ref" in node and seen < 20:
            ref = str(node["$ref"])
            if not ref.startswith("#/"):
                raise ValueError(f"{self.name}: only local references are read, got {ref}")
            pointer = ref[1:]
            node = _at(self.document, pointer)
            seen += 1
        return node, pointer

    # -- matching --------------------------------------------------------------------------------------------

    def covers(self, path: str) -> bool:
        """Whether some operation of the document is on ``path``'s template."""
        return any(op.pattern.fullmatch(path) for op in self.operations)

    def operation(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation ``method path`` is, and its path parameters (by group name); ``None`` when the document has
        none."""
        for op in self.operations:
            found = op.pattern.fullmatch(path)
            if found and op.method == method.upper():
                return op, found.groupdict()
        return None

    # -- checking --------------------------------------------------------------------------------------------

    def request_problems(
        self,
        op: Operation,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        content_type: str,
        body: bytes,
        *,
        complete: bool,
    ) -> list[str]:
        """What in a request ``op`` does not take: parameters, query and body.

        :param op: the operation the request is
        :param path_params: its path parameters
        :param query: its query string, decoded
        :param content_type: its ``content-type`` header
        :param body: its body (the start of it when not ``complete``)
        :param complete: whether ``body`` is the whole body
        """
        problems: list[str] = []
        values = _query_values(op, query, problems)
        for param in op.parameters:
            raw = path_params.get(_group(param.name)) if param.location == "path" else values.get(param.name)
            if raw is None:
                if param.required:
                    problems.append(f"{param.location} parameter {param.name!r} is required")
                continue
            value = raw if isinstance(raw, dict) else _coerce(raw, param.types)
            problems += [f"{param.location} {param.name}: {error}" for error in param.check.errors(value)]
        problems += self._body_problems(op, content_type, body, complete=complete)
        return problems

    def _body_problems(self, op: Operation, content_type: str, body: bytes, *, complete: bool) -> list[str]:
        media_type = content_type.split(";")[0].strip().lower()
        if op.body is None:
            return [f"a body ({media_type or 'no content-type'}) the operation does not take"] if body.strip() else []
        if not body.strip():
            return ["the operation's body is required"] if op.body.required else []
        if media_type != op.body.media_type:
            return [f"a {media_type or 'untyped'} body where {op.body.media_type} is documented"]
        if media_type == _MULTIPART:
            form = multipart_form(content_type, body)
            return [f"form {e}" for e in op.body.check.errors(form, ignore_required=not complete)]
        if not complete:
            return []
        try:
            document = json.loads(body)
        except ValueError:
            return ["the body is not JSON"]
        return [f"body {error}" for error in op.body.check.errors(document)]

    def answer_problems(self, op: Operation | None, status: int, content_type: str, body: bytes) -> list[str]:
        """What in an answer ``op`` does not document (``op`` ``None``: a path the document has no operation on,
        whose error answers are still the vendor's error object)."""
        answer = None if op is None else _documented(op, status)
        if answer is None or (answer.check is None and status >= 400):
            if status >= 400 and self.error_check is not None:
                return _json_problems(self.error_check, content_type, body, "error")
            if op is None or answer is not None:
                return []
            return [f"status {status} is not documented (documented: {', '.join(sorted(op.answers))})"]
        if answer.check is None:
            return ["a 204 answer with a body"] if status == 204 and body else []
        return _json_problems(answer.check, content_type, body, "body")


# -- reading the document ------------------------------------------------------------------------------------


def _operations(contract: Contract, *, swagger: bool) -> Iterator[Operation]:
    for template, item in contract.document.get("paths", {}).items():
        item_pointer = f"/paths/{_escape(template)}"
        shared = list(item.get("parameters", []))
        for method in _METHODS:
            if method not in item:
                continue
            op = item[method]
            op_pointer = f"{item_pointer}/{method}"
            pointers = [f"{item_pointer}/parameters/{i}" for i in range(len(shared))]
            pointers += [f"{op_pointer}/parameters/{i}" for i in range(len(op.get("parameters", [])))]
            raw_params = [*shared, *op.get("parameters", [])]
            params = [contract.resolve(p, ptr) for p, ptr in zip(raw_params, pointers, strict=True)]
            if swagger:
                parameters, body = _swagger_inputs(contract, params, op)
                answers = _swagger_answers(contract, op, op_pointer)
            else:
                parameters = _openapi_parameters(contract, params)
                body = _openapi_body(contract, op, op_pointer)
                answers = _openapi_answers(contract, op, op_pointer)
            yield Operation(
                method=method.upper(),
                template=template,
                pattern=_path_pattern(template),
                parameters=tuple(parameters),
                body=body,
                answers=answers,
            )


def _openapi_parameters(contract: Contract, params: list[tuple[Mapping[str, Any], str]]) -> list[Parameter]:
    found = []
    for param, pointer in params:
        if param.get("in") not in ("path", "query"):
            continue
        schema = param.get("schema", {})
        found.append(
            Parameter(
                name=param["name"],
                location=param["in"],
                required=bool(param.get("required", param["in"] == "path")),
                check=contract.check_at(f"{pointer}/schema"),
                types=_declared_types(contract, schema, f"{pointer}/schema"),
                deep_object=param.get("style") == "deepObject",
            )
        )
    return found


def _openapi_body(contract: Contract, op: Mapping[str, Any], op_pointer: str) -> Body | None:
    if "requestBody" not in op:
        return None
    request_body, pointer = contract.resolve(op["requestBody"], f"{op_pointer}/requestBody")
    content = request_body.get("content", {})
    for media_type in (_JSON, _MULTIPART):
        if media_type in content:
            return Body(
                media_type=media_type,
                required=bool(request_body.get("required", False)),
                check=contract.check_at(f"{pointer}/content/{_escape(media_type)}/schema"),
            )
    return None


def _openapi_answers(contract: Contract, op: Mapping[str, Any], op_pointer: str) -> dict[str, Answer]:
    answers = {}
    for code, raw in op.get("responses", {}).items():
        response, pointer = contract.resolve(raw, f"{op_pointer}/responses/{code}")
        content = response.get("content", {})
        check = contract.check_at(f"{pointer}/content/{_escape(_JSON)}/schema") if _JSON in content else None
        answers[str(code).upper()] = Answer(media_types=tuple(content), check=check)
    return answers


def _swagger_inputs(
    contract: Contract, params: list[tuple[Mapping[str, Any], str]], op: Mapping[str, Any]
) -> tuple[list[Parameter], Body | None]:
    parameters: list[Parameter] = []
    body: Body | None = None
    form: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for param, pointer in params:
        where = param.get("in")
        if where == "body":
            body = Body(_JSON, bool(param.get("required", False)), contract.check_at(f"{pointer}/schema"))
        elif where == "formData":
            form["properties"][param["name"]] = _swagger_schema(param)
            if param.get("required"):
                form["required"].append(param["name"])
        elif where in ("path", "query"):
            schema = _swagger_schema(param)
            parameters.append(
                Parameter(
                    name=param["name"],
                    location=where,
                    required=bool(param.get("required", where == "path")),
                    check=contract.check_of(schema),
                    types=frozenset({schema["type"]}) if isinstance(schema.get("type"), str) else frozenset(),
                )
            )
    if form["properties"] and _MULTIPART in op.get("consumes", []):
        body = Body(_MULTIPART, True, contract.check_of(form))
    return parameters, body


def _swagger_schema(param: Mapping[str, Any]) -> dict[str, Any]:
    schema = {key: value for key, value in param.items() if key in _PARAMETER_SCHEMA_KEYS}
    if schema.get("type") == "file":
        return {}
    return schema


def _swagger_answers(contract: Contract, op: Mapping[str, Any], op_pointer: str) -> dict[str, Answer]:
    answers = {}
    produces = tuple(op.get("produces", [_JSON]))
    for code, raw in op.get("responses", {}).items():
        response, pointer = contract.resolve(raw, f"{op_pointer}/responses/{code}")
        schema = response.get("schema")
        check = None
        if isinstance(schema, Mapping) and schema.get("type") != "file":
            check = contract.check_at(f"{pointer}/schema")
        answers[str(code).upper()] = Answer(media_types=produces if check else (), check=check)
    return answers


def _declared_types(contract: Contract, schema: Mapping[str, Any], pointer: str) -> frozenset[str]:
    """The JSON types a parameter's schema admits (following ``$ref`` and one level of ``anyOf``/``oneOf``)."""
    schema, pointer = contract.resolve(schema, pointer)
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or ())
    for key in ("anyOf", "oneOf"):
        for i, member in enumerate(schema.get(key, [])):
            types |= _declared_types(contract, member, f"{pointer}/{key}/{i}")
    return frozenset(types)


# -- normalizing -----------------------------------------------------------------------------------------------


def normalize(node: Any, *, swagger: bool) -> Any:
    """``node`` with OpenAPI 3.0 and Swagger 2.0 keywords read as JSON Schema 2020-12 (see the module's doc)."""
    if isinstance(node, list):
        return [normalize(item, swagger=swagger) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: normalize(value, swagger=swagger) for key, value in node.items()}
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool) and out.pop(bound) and limit in out:
            out[bound] = out.pop(limit)
    if swagger and isinstance(out.get("properties"), dict):
        required = set(out.get("required", []))
        out["properties"] = {
            name: value if name in required else _nullable(value) for name, value in out["properties"].items()
        }
    if out.get("nullable") is True or (swagger and out.get("x-nullable") is True):
        return _nullable({k: v for k, v in out.items() if k not in ("nullable", "x-nullable")})
    return out


def _nullable(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    declared = schema.get("type")
    if isinstance(declared, str) and "$ref" not in schema:
        widened = {**schema, "type": [declared, "null"]}
        if "enum" in schema and None not in schema["enum"]:
            widened["enum"] = [*schema["enum"], None]
        return widened
    if isinstance(declared, list):
        return {**schema, "type": [*declared, "null"]} if "null" not in declared else schema
    if not schema:
        return schema
    return {"anyOf": [{"type": "null"}, schema]}


# -- small helpers ---------------------------------------------------------------------------------------------


def _documented(op: Operation, status: int) -> Answer | None:
    return op.answers.get(str(status)) or op.answers.get(f"{status // 100}XX") or op.answers.get("DEFAULT")


def _json_problems(check: Check, content_type: str, body: bytes, what: str) -> list[str]:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type != _JSON and not media_type.endswith("+json"):
        return [f"a {media_type or 'untyped'} answer where JSON is documented"]
    try:
        document = json.loads(body)
    except ValueError:
        return ["the answer is not JSON"]
    return [f"{what} {error}" for error in check.errors(document)]


def _query_values(op: Operation, query: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """The query by parameter: ``name[key]=value`` pairs of a deepObject parameter gathered in a dict."""
    deep = {param.name for param in op.parameters if param.deep_object}
    known = {param.name for param in op.parameters if param.location == "query"}
    values: dict[str, Any] = {}
    for key, value in query.items():
        outer, bracket, inner = key.partition("[")
        if bracket and outer in deep and inner.endswith("]"):
            values.setdefault(outer, {})[inner[:-1]] = value
        elif key in known:
            values[key] = value
        else:
            problems.append(f"query parameter {key!r} is not documented")
    return values


def _coerce(raw: str, types: frozenset[str]) -> object:
    """A query or path string as the type its schema declares, when it reads as one."""
    if "integer" in types and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if "number" in types and re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", raw):
        return float(raw)
    if "boolean" in types and raw in ("true", "false"):
        return raw == "true"
    return raw


def multipart_form(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a ``multipart/form-data`` body (a file part reads as :data:`FILE_PART`); a body cut short
    gives the fields that arrived whole."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    form: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        if part.get_filename() is not None:
            form[name] = FILE_PART
        else:
            payload = part.get_payload(decode=True)
            form[name] = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return form


def _path_pattern(template: str) -> re.Pattern[str]:
    pattern = ""
    for piece in re.split(r"(\{[^}]+\})", template):
        if piece.startswith("{") and piece.endswith("}"):
            pattern += f"(?P<{_group(piece[1:-1])}>[^/]+)"
        else:
            pattern += re.escape(piece)
    return re.compile(pattern)


def _group(name: str) -> str:
    # Swagger names like ``fine-tuning-job-id`` are not Python group names.
    return re.sub(r"\W", "_", name)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _at(document: Mapping[str, Any], pointer: str) -> Any:
    node: Any = document
    for token in pointer.lstrip("/").split("/"):
        node = node[int(token)] if isinstance(node, list) else node[token.replace("~1", "/").replace("~0", "~")]
    return node


def _anchored(node: Any, uri: str) -> Any:
    """``node`` with its local ``$ref`` made absolute (into the contract's document)."""
    if isinstance(node, list):
        return [_anchored(item, uri) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: (f"{uri}{value}" if key == "$ref" and str(value).startswith("#") else _anchored(value, uri))
        for key, value in node.items()
    }


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
