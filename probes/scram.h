/* The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel
 * binding: pure, with OpenSSL's PBKDF2, HMAC and SHA-256. PostgreSQL speaks
 * it inside SASL messages (probes/postgres.c); nothing here knows that.
 *
 * The password is used as given: SASLprep (RFC 4013) changes only passwords
 * with non-ASCII or control characters, and PostgreSQL itself falls back to
 * the raw bytes when a password is not valid for SASLprep. */
#ifndef VP_SCRAM_H
#define VP_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/limits.h"

#define VP_SCRAM_KEY_LEN 32       /* SHA-256 */
#define VP_SCRAM_NONCE_LEN 24     /* base64 of 18 random bytes */

/* One exchange. Holds the messages the signatures cover and the expected
 * server signature; wipe it with vp_scram_done(). */
struct vp_scram {
	char client_first_bare[VP_SCRAM_MSG_MAX];   /* "n=USER,r=NONCE" */
	char nonce[VP_SCRAM_MSG_MAX];               /* the client's */
	uint8_t server_signature[VP_SCRAM_KEY_LEN];
	bool have_signature;                        /* client-final was made */
};

/* Writes the client-first message "n,,n=USER,r=NONCE" to 'out'. 'user' is
 * escaped as RFC 5802 5.1 says ("," and "=") and may be "" (PostgreSQL takes
 * the user from the startup message). 'nonce' NULL: 18 random bytes from
 * OpenSSL, base64. Returns the length, -ENOSPC, -EINVAL for a nonce with a
 * ',' or a non-printable byte, or -EIO when no random bytes came. */
int vp_scram_client_first(struct vp_scram *s, const char *user, const char *nonce, char *out,
                          size_t outlen);

/* Reads the server-first message (r=, s=, i=) and writes the client-final
 * message "c=biws,r=NONCE,p=PROOF" to 'out'. Returns its length, or
 * -EBADMSG for a malformed message or a nonce that does not extend ours,
 * -ERANGE for an iteration count outside 1..VP_SCRAM_ITER_MAX,
 * -ENOTSUP for a mandatory extension (m=), -ENOSPC, or -EIO. */
int vp_scram_client_final(struct vp_scram *s, const void *password, size_t pwlen,
                          const char *server_first, size_t sflen, char *out, size_t outlen);

/* Checks the server-final message "v=SIGNATURE". Returns 0 when the server
 * proved that it knows the password, -EACCES when its signature is wrong,
 * -EPERM when it sent "e=ERROR" instead, -EBADMSG when malformed or when no
 * client-final was made. */
int vp_scram_verify_final(const struct vp_scram *s, const char *server_final, size_t len);

/* Wipes the state (it holds what a signature can be checked with). */
void vp_scram_done(struct vp_scram *s);

#endif
