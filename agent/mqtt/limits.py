"""Sizes the collector accepts (docs/schemas/ agree): the agent checks them before it sends."""

#: What a reader accepts at most: a raw MQTT payload, and the JSON a compressed one inflates to.
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_INFLATED_BYTES = 2 * 1024 * 1024
#: Limits of docs/schemas/ (the collector refuses more); the agent checks them before sending, since
#: a refused record would otherwise be resent forever and hold back its whole stream.
MAX_MSG_ID_CHARS = 400
MAX_PAYLOAD_KEYS = 500
MAX_BATCH_RECORDS = 1000
MAX_WALL_SOURCE_CHARS = 32
#: The largest seq (schemas' "maximum"): every integer up to it is exact in a double and in SQLite.
MAX_SEQ = 2**53
#: Nesting of JSON arrays and objects a reader accepts: agent documents nest fewer than ten levels, and
#: a few hundred make json.dumps or a schema error message raise RecursionError further on.
MAX_JSON_DEPTH = 64
