"""Bodies declared once: an attrs class says what a request or a response holds, and from
it come the check of a request (a clear 400 naming the field), the JSON Schema of the
OpenAPI document, and the JSON written back (`omnichannel_core.serialization`).

- `omnichannel_core.bodies.fields`: :func:`field`, an attrs field with schema keywords;
- `omnichannel_core.bodies.schema`: the JSON Schema of a class (:class:`SchemaBook`);
- `omnichannel_core.bodies.reading`: a request's JSON, query or headers as its class.
"""
