/* RESP, the Redis serialization protocol (version 2), as far as a probe
 * needs it: commands out as arrays of bulk strings, replies in. Pure: bytes
 * in, a parsed reply out; no socket, loop or clock. */
#ifndef VP_RESP_H
#define VP_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "agent/limits.h"
#include "probes/classify.h"

/* Writes the command argv[0..argc) as a RESP array of bulk strings.
 * Returns its length or -ENOSPC. */
int vp_resp_command(uint8_t *out, size_t cap, size_t argc, const char *const *argv,
                    const size_t *lens);

/* One reply. */
struct vp_resp_reply {
	char type;             /* '+' status, '-' error, ':' integer, '$' bulk, '*' array */
	const uint8_t *text;   /* borrowed: the line after the type byte, or the bulk body */
	size_t len;            /* of 'text'; for '*' and a null bulk, 0 */
	long long count;       /* '*': the element count; '$': -1 for a null bulk */
};

/* Parses the first reply in buf[0..len). Returns its size when complete,
 * 0 when more bytes are needed, or -EBADMSG for anything that is not RESP:
 * an unknown type byte, a line without CRLF within VP_RESP_LINE_MAX bytes,
 * a bare CR or LF, a length that is not a number or is out of bounds.
 * An array is returned as its header alone: a probe expects none. */
int vp_resp_parse(const uint8_t *buf, size_t len, struct vp_resp_reply *out);

/* Reads an error reply ('-' line): its reason and a hint in Memorystore
 * terms into 'out' (reason = VP_REASON_PROTOCOL). "NOAUTH" auth_required,
 * "WRONGPASS" and "ERR invalid password" auth_failed, "DENIED"
 * protected_mode, "LOADING" loading, "ERR max number of clients reached"
 * max_clients; any other error is named after its first word, lowercased,
 * [a-z_] only, at most VP_PROTO_REASON_MAX bytes ("MASTERDOWN" masterdown). */
void vp_resp_error_reason(const uint8_t *line, size_t len, struct vp_verdict_out *out);

#endif
