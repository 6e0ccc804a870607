"""Checks of the wire contract that JSON Schema cannot say, for schemathesis.

Loaded by tests/conformance/schemathesis.sh (SCHEMATHESIS_HOOKS). Every check
here is registered with `@schemathesis.check`, so `--checks all` runs it.
"""

import json
import re

import jsonschema_rs
import schemathesis

# Idempotency keys are remembered across requests (PROTOCOL.md, POST /events):
# a schema-valid event may reuse a key already in the log for other content
# (`idempotency_conflict`), or a batch may carry one key twice
# (`duplicate_key`). Both are 422 by the contract and no schema can rule them
# out, so schemathesis.toml lets positive data get 422 on POST /events, and
# this check makes sure that 422 is never anything else.
KEY_CONFLICTS = {"duplicate_key", "idempotency_conflict"}


@schemathesis.check
def publish_refuses_valid_events_only_for_key_reuse(ctx, response, case):
    """A schema-valid publish is refused with 422 only for a reused key."""
    if case.operation.method.upper() != "POST" or case.operation.path != "/events":
        return None
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code != 422:
        return None
    try:
        code = response.json().get("error")
    except Exception:  # noqa: BLE001 - a non-JSON 422 is reported below
        code = None
    if code not in KEY_CONFLICTS:
        raise AssertionError(
            f"a schema-valid publish was refused with 422 {code!r}; "
            f"only {sorted(KEY_CONFLICTS)} may refuse valid events"
        )
    return None


@schemathesis.check
def error_bodies_are_the_contracts(ctx, response, case):
    """Every 4xx/5xx carries the JSON error body of the contract."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/json"):
        raise AssertionError(
            f"{response.status_code} answered with Content-Type {content_type!r}, "
            'not the contract\'s JSON body {"error", "message"}'
        )
    body = response.json()
    if not (
        isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and isinstance(body.get("message"), str)
    ):
        raise AssertionError(
            f'{response.status_code} body is not {{"error": str, "message": str}}: {body!r}'
        )
    return None


# GET /events/stream: schemathesis reads an event stream until its request
# timeout and hands over the complete frames. The spec (OpenAPI 3.1) gives
# the whole text/event-stream body as a string, so the frames are checked
# here against the contract and the spec's own `Event` and `ResetData`:
# the opening `retry:` line, event frames as `id:` + `data: <Event>` with no
# `event:` line and increasing ids, and at most one final `event: reset`.
_BLOCK_END = re.compile(r"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(r"\r\n|\r|\n")
_validators = {}


def _validator(case, name):
    if name not in _validators:
        components = case.operation.schema.raw_schema["components"]
        document = {"components": components, "$ref": f"#/components/schemas/{name}"}
        _validators[name] = jsonschema_rs.validator_for(document)
    return _validators[name]


def _frames(text):
    """(fields, data) for each complete frame that carries data."""
    frames = []
    for block in _BLOCK_END.split(text):
        fields, data = {}, []
        for line in _LINE_END.split(block):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
        if data:
            frames.append((fields, "\n".join(data)))
    return frames


@schemathesis.check
def stream_frames_are_the_contracts(ctx, response, case):
    """The frames of GET /events/stream: opening, events, final reset."""
    if case.operation.method.upper() != "GET" or case.operation.path != "/events/stream":
        return None
    if response.status_code != 200:
        return None
    text = response.content.decode("utf-8")
    if not re.match(r"retry: [0-9]+\r?\n", text):
        raise AssertionError(f"the stream does not open with `retry: <ms>`: {text[:80]!r}")
    last_id = None
    frames = _frames(text)
    for index, (fields, data) in enumerate(frames):
        event = json.loads(data)
        kind = fields.get("event")
        if kind is None:
            _validator(case, "Event").validate(event)
            if fields.get("id") != str(event["id"]):
                raise AssertionError(f"frame id {fields.get('id')!r} is not the event's id {event['id']}")
            if last_id is not None and event["id"] <= last_id:
                raise AssertionError(f"event {event['id']} after event {last_id}: ids must increase")
            last_id = event["id"]
        elif kind == "reset":
            _validator(case, "ResetData").validate(event)
            if index != len(frames) - 1:
                raise AssertionError("a frame follows `event: reset`; the server must end the stream")
        else:
            raise AssertionError(f"unknown frame `event: {kind}`")
    return None
