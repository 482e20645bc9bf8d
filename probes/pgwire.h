/* The PostgreSQL frontend/backend protocol 3.0, as far as a login goes:
 * the messages vpcprobe sends, and a parser for what the server answers.
 * Pure: bytes in, bytes or a parsed message out; no socket, loop or clock.
 * See the PostgreSQL documentation, "Frontend/Backend Protocol", 55.2 (the
 * message flow) and 55.7 (message formats). */
#ifndef VP_PGWIRE_H
#define VP_PGWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/limits.h"
#include "probes/classify.h"

#define VP_PG_SSL_REQUEST_LEN 8
#define VP_PG_TERMINATE_LEN 5
#define VP_PG_MD5_LEN 35       /* "md5" and 32 hex digits */

/* SSLRequest: length 8, code 80877103. */
void vp_pg_ssl_request(uint8_t out[VP_PG_SSL_REQUEST_LEN]);
/* Terminate: 'X', length 4. */
void vp_pg_terminate(uint8_t out[VP_PG_TERMINATE_LEN]);

/* StartupMessage for protocol 3.0 with user, database and application_name.
 * Returns its length, -ENOSPC when 'cap' is too small, -EINVAL for an empty
 * user (the server requires one). */
int vp_pg_startup(uint8_t *out, size_t cap, const char *user, const char *database,
                  const char *application_name);

/* PasswordMessage ('p') carrying 'pw' and a NUL. Returns its length,
 * -ENOSPC, or -EINVAL when 'pw' holds a NUL (the server would cut it). */
int vp_pg_password(uint8_t *out, size_t cap, const void *pw, size_t pwlen);

/* SASLInitialResponse ('p'): mechanism, then the client's first message. */
int vp_pg_sasl_initial(uint8_t *out, size_t cap, const char *mechanism, const void *data,
                       size_t len);
/* SASLResponse ('p'): the client's next message. */
int vp_pg_sasl_response(uint8_t *out, size_t cap, const void *data, size_t len);

/* The md5 method's answer: "md5" + md5hex(md5hex(password + user) + salt),
 * NUL-terminated in 'out'. Returns 0, or -EIO when the digest fails. */
int vp_pg_md5_password(const char *user, const void *pw, size_t pwlen, const uint8_t salt[4],
                       char out[VP_PG_MD5_LEN + 1]);

/* One backend message: type byte, int32 length (itself included), body. */
struct vp_pg_msg {
	uint8_t type;
	const uint8_t *body;   /* borrowed from the buffer given to vp_pg_frame() */
	size_t len;            /* of the body */
};

/* Frames the first message in buf[0..len). Returns its whole size when it is
 * complete, 0 when more bytes are needed, or -EBADMSG when its length is
 * below 4 or above VP_PG_MSG_MAX (not PostgreSQL, or a hostile peer). */
int vp_pg_frame(const uint8_t *buf, size_t len, struct vp_pg_msg *msg);

/* The codes of an Authentication message ('R'). */
enum vp_pg_auth_code {
	VP_PG_AUTH_OK = 0,
	VP_PG_AUTH_KRB5 = 2,
	VP_PG_AUTH_CLEARTEXT = 3,
	VP_PG_AUTH_MD5 = 5,
	VP_PG_AUTH_SCM = 6,
	VP_PG_AUTH_GSS = 7,
	VP_PG_AUTH_GSS_CONTINUE = 8,
	VP_PG_AUTH_SSPI = 9,
	VP_PG_AUTH_SASL = 10,
	VP_PG_AUTH_SASL_CONTINUE = 11,
	VP_PG_AUTH_SASL_FINAL = 12,
};

struct vp_pg_auth {
	uint32_t code;
	uint8_t salt[4];           /* MD5 */
	const uint8_t *data;       /* SASL continue and final: borrowed from the message */
	size_t data_len;
	bool scram_sha_256;        /* SASL: the server offers SCRAM-SHA-256 */
	char mechanisms[96];       /* SASL: the list as offered, escaped, for the detail */
};

/* Parses an 'R' message. Returns 0 or -EBADMSG (too short, MD5 without its
 * salt, a SASL list without its terminator). */
int vp_pg_parse_auth(const struct vp_pg_msg *m, struct vp_pg_auth *out);

/* "trust", "an MD5 password", "SASL (SCRAM-SHA-256)", ...: what the method
 * is called in a sentence. */
const char *vp_pg_auth_method(uint32_t code);

/* An ErrorResponse or NoticeResponse; every field escaped and bounded. */
struct vp_pg_error {
	char severity[16];         /* "FATAL", "ERROR", ...; "" when absent */
	char sqlstate[6];          /* five characters [0-9A-Z], "" when absent or malformed */
	char message[VP_PG_FIELD_MAX];
};

/* Parses an 'E' or 'N' message. Returns 0 or -EBADMSG (a field without its
 * terminator, or no terminating zero byte). */
int vp_pg_parse_error(const struct vp_pg_msg *m, struct vp_pg_error *out);

/* The reason for the error's SQLSTATE ("pg_hba_rejected" for 28000, ...,
 * "sqlstate_XXXXX" for the others) into out->reason_text with
 * out->reason = VP_REASON_PROTOCOL, and a hint in Cloud SQL terms into
 * out->hint. The verdict and detail are left alone. */
void vp_pg_error_reason(const struct vp_pg_error *e, struct vp_verdict_out *out);

#endif
