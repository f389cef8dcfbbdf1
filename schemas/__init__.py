"""Wire formats of the public API: msgspec Structs, camelCase on the wire."""
