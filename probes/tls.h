/* TLS over a probe's own connection (issue 4): OpenSSL with two memory BIOs,
 * so that the libuv stream stays the only thing that touches the socket.
 *
 * The protocol module (postgres after its SSLRequest, rediss at once) calls
 * vp_tls_start(); from then on probes/tcp.c hands every byte read to
 * vp_tls_on_read() and every vp_tcp_send() to vp_tls_send(), and the
 * protocol sees plaintext in p->rbuf as before. A failed handshake ends the
 * probe with a tls_error verdict whose reason comes from the pure
 * vp_tls_classify(). */
#ifndef VP_TLS_H
#define VP_TLS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/limits.h"
#include "config/url.h"
#include "probes/classify.h"

struct vp_tcp_probe;
struct vp_tls;

/* How much of the server's certificate is checked. Set per connection; the
 * SSL_CTX (one per ca_file) is shared. */
enum vp_tls_verify {
	VP_VERIFY_NONE,    /* encrypt only: libpq's require without a root certificate */
	VP_VERIFY_CHAIN,   /* the chain up to ca_file or the system's CAs: libpq's verify-ca */
	VP_VERIFY_HOST,    /* the chain, and the host name or IP address in the certificate */
};

/* cert_days_left when no certificate was seen. */
#define VP_CERT_DAYS_UNKNOWN INT_MIN

/* The strings are borrowed until the probe ends (the target's). */
struct vp_tls_opts {
	const char *ca_file;       /* borrowed; NULL: the system's CAs */
	const char *host;          /* borrowed: SNI when it is a name, and the name
	                            * VP_VERIFY_HOST checks; may be an IP address */
	enum vp_tls_verify verify;
	bool offered;              /* the server already agreed to TLS (postgres 'S') */
};

/* What a probe's TLS did, for the result and its record. */
struct vp_tls_info {
	bool asked;                /* TLS was asked for: the record carries a "tls" object */
	bool offered;              /* the server agreed: 'S', or it answered in TLS */
	char version[VP_TLS_VERSION_MAX];  /* "TLSv1.3"; "" unless the handshake finished */
	char cipher[VP_TLS_CIPHER_MAX];    /* "TLS_AES_256_GCM_SHA384"; "" likewise */
};

/* Marks the probe as asking for TLS before it knows whether the server
 * agrees (postgres' SSLRequest), so that the record says what came of it.
 * Returns 0 or -ENOMEM. */
int vp_tls_ask(struct vp_tcp_probe *p);

/* Begins the handshake: the ClientHello goes out with vp_tcp_send_raw().
 * Never fails: a failure ends the probe with a verdict (tls_error, or
 * local_error when the agent itself cannot: no memory, an unusable
 * ca_file). 'ready' runs once, when the handshake is done, and may send
 * with vp_tcp_send(). */
void vp_tls_start(struct vp_tcp_probe *p, const struct vp_tls_opts *o,
                  void (*ready)(struct vp_tcp_probe *p));

/* ---- the hooks in probes/tcp.c ---- */

/* Whether bytes on the wire are TLS: true from vp_tls_start() on. Accepts
 * NULL. */
bool vp_tls_active(const struct vp_tls *t);

/* 'n' bytes from the server have just been read to p->rbuf + p->rlen (past
 * the plaintext). They are moved into OpenSSL; the handshake goes on, or
 * the plaintext they carry is handed to the protocol (vp_tcp_deliver()). */
void vp_tls_on_read(struct vp_tcp_probe *p, size_t n);

/* vp_tcp_send() once TLS is active. Returns 0 or -errno; -ENOTCONN before
 * the handshake is done. */
int vp_tls_send(struct vp_tcp_probe *p, const void *buf, size_t len);

/* The connection ended (closed, reset, the deadline) without the protocol
 * deciding, as 'v' says. If that happened during the handshake, rewrites
 * 'v' in TLS terms and returns true. */
bool vp_tls_phase_end(const struct vp_tcp_probe *p, struct vp_verdict_out *v);

/* The result: 'info', the handshake's duration in '*ms' (from the
 * ClientHello to its end, or to 'end_ns' when it did not end; < 0 when none
 * began) and the days until the server's certificate expires in '*days'
 * (negative once expired; VP_CERT_DAYS_UNKNOWN). Accepts a NULL 't'. */
void vp_tls_report(const struct vp_tls *t, uint64_t end_ns, struct vp_tls_info *info,
                   double *ms, int *days);

/* For a protocol whose TLS another library speaks (https through libcurl):
 * records what that TLS did, so that the result and its record carry it as
 * they do for postgres and rediss. 'start_ns' is when the handshake began
 * (0: it never did), 'end_ns' when it ended (0: not, the probe's end counts);
 * 'cert_days_left' as in vp_tls_report(). Returns 0 or -ENOMEM. */
int vp_tls_note(struct vp_tcp_probe *p, const struct vp_tls_info *info, uint64_t start_ns,
                uint64_t end_ns, int cert_days_left);

/* "TLSv1.3", or "" unless the handshake finished. Accepts NULL. */
const char *vp_tls_version(const struct vp_tls *t);

/* Accepts NULL; returns NULL. */
struct vp_tls *vp_tls_free(struct vp_tls *t);

/* Frees every cached SSL_CTX (they are made once per ca_file and kept).
 * Connections still open keep theirs alive. */
void vp_tls_cache_clear(void);

/* ---- the pure classifier (probes/tls_classify.c) ---- */

enum vp_tls_event {
	VP_TLS_EV_FAILED,      /* OpenSSL failed: verify_result and err say why */
	VP_TLS_EV_NOT_TLS,     /* the server's first bytes are not a TLS record */
	VP_TLS_EV_CLOSED,      /* the server closed the connection during the handshake */
	VP_TLS_EV_RESET,       /* the connection was reset during the handshake */
	VP_TLS_EV_TIMEOUT,     /* the deadline passed during the handshake */
	VP_TLS_EV_TOO_LARGE,   /* the handshake passed VP_TLS_HANDSHAKE_MAX bytes */
	VP_TLS_EV_NOT_OFFERED, /* TLS is required and the server declined (postgres 'N') */
	VP_TLS_EV_MAX,
};

/* What a failed TLS handshake observed. */
struct vp_tls_obs {
	enum vp_tls_event event;
	enum vp_kind kind;         /* the hint's words: Cloud SQL, Memorystore, ... */
	enum vp_tls_verify verify;
	long verify_result;        /* SSL_get_verify_result(): X509_V_OK (0) unless refused */
	unsigned long err;         /* the first OpenSSL error (ERR_peek_error()), 0 for none */
	const char *host;          /* borrowed, may be NULL: the name the certificate must carry */
	const char *ca_file;       /* borrowed, NULL: the system's CAs */
	int cert_days_left;        /* of the server's certificate, or VP_CERT_DAYS_UNKNOWN */
	size_t bytes;              /* handshake bytes read from the server */
	uint32_t timeout_ms;
	int sys_err;               /* RESET: the positive errno */
	const uint8_t *first;      /* NOT_TLS: the server's first bytes (borrowed) */
	size_t first_len;
};

/* The verdict (tls_error; timeout for VP_TLS_EV_TIMEOUT), a reason in
 * out->reason_text (cert_expired, unknown_ca, hostname_mismatch,
 * protocol_version, handshake_failure, tls_not_offered, tls_timeout), a
 * detail and a hint in Cloud SQL / Memorystore terms. Touches no socket,
 * loop or clock. */
void vp_tls_classify(const struct vp_tls_obs *obs, struct vp_verdict_out *out);

/* The reason alone, as vp_tls_classify() names it: a static string. The
 * https probe, whose TLS libcurl speaks, takes its reasons from here too, so
 * that the same fault has the same name for every kind. */
const char *vp_tls_reason(const struct vp_tls_obs *obs);

/* Whether 'buf' may begin a TLS record from a server: a handshake or an
 * alert record of version 3.x. Looks at most at the first 3 bytes. */
bool vp_tls_looks_like_tls(const uint8_t *buf, size_t len);

#endif
