"""schemathesis hooks for Depot's documents (loaded through SCHEMATHESIS_HOOKS).

tus sends a chunk's bytes as application/offset+octet-stream, a media type
schemathesis has no serializer for: its bytes go as they are.
"""
import schemathesis


@schemathesis.serializer("application/offset+octet-stream")
def offset_stream(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode()
