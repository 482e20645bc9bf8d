/* The pure half of the TLS module: what a failed handshake observed in, a
 * verdict, a reason, a detail and a hint in Cloud SQL / Memorystore terms
 * out. It reads OpenSSL's tables of error strings and nothing else: no
 * socket, no loop, no clock, so every row of its table is a unit test. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "probes/tls.h"
#include "probes/wire.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define SHOWN_PATH_MAX 96   /* a ca_file or host cut to this in a hint */

/* The names are those of probes/http_status.c too: a reason means the same
 * for every kind. */
enum reason {
	R_CERT_EXPIRED,
	R_CERT_NOT_YET_VALID,
	R_CERT_REVOKED,
	R_CERT_INVALID,
	R_UNKNOWN_CA,
	R_HOSTNAME_MISMATCH,
	R_PROTOCOL_VERSION,
	R_HANDSHAKE_FAILURE,
	R_NOT_OFFERED,
	R_TIMEOUT,
};

static const char *const reason_names[] = {
	[R_CERT_EXPIRED] = "cert_expired",
	[R_CERT_NOT_YET_VALID] = "cert_not_yet_valid",
	[R_CERT_REVOKED] = "cert_revoked",
	[R_CERT_INVALID] = "cert_invalid",
	[R_UNKNOWN_CA] = "unknown_ca",
	[R_HOSTNAME_MISMATCH] = "hostname_mismatch",
	[R_PROTOCOL_VERSION] = "protocol_version",
	[R_HANDSHAKE_FAILURE] = "handshake_failure",
	[R_NOT_OFFERED] = "tls_not_offered",
	[R_TIMEOUT] = "tls_timeout",
};

/* The chain does not lead to a CA that this host trusts. */
static const long unknown_ca_codes[] = {
	X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
	X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
	X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
	X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
	X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
	X509_V_ERR_CERT_UNTRUSTED,
	X509_V_ERR_INVALID_CA,
};

/* Both ends speak TLS, but no version in common: ours (1.2 and 1.3) turned
 * down, the server's alert, or a ServerHello of an older version. */
static const int version_codes[] = {
	SSL_R_UNSUPPORTED_PROTOCOL,
	SSL_R_WRONG_VERSION_NUMBER,
	SSL_R_TLSV1_ALERT_PROTOCOL_VERSION,
	SSL_R_NO_PROTOCOLS_AVAILABLE,
	SSL_R_VERSION_TOO_LOW,
	SSL_R_VERSION_TOO_HIGH,
	SSL_R_UNSUPPORTED_SSL_VERSION,
	SSL_R_UNKNOWN_SSL_VERSION,
	/* A TLS 1.0 or 1.1 server signs with SHA-1 or MD5, which OpenSSL 3
	 * refuses at its default security level: the version is the cause. */
	SSL_R_LEGACY_SIGALG_DISALLOWED_OR_UNSUPPORTED,
};

/* The server's alerts when it wants a client certificate: TLS 1.3's own,
 * and the generic one that TLS 1.2 servers send. */
static const int client_cert_codes[] = {
	SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED,
	SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE,
};

static bool has_long(const long *codes, size_t n, long code)
{
	for (size_t i = 0; i < n; i++)
		if (codes[i] == code)
			return true;
	return false;
}

static bool has_int(const int *codes, size_t n, int code)
{
	for (size_t i = 0; i < n; i++)
		if (codes[i] == code)
			return true;
	return false;
}

/* The SSL library's reason code in 'err', or 0 for another library's. */
static int ssl_reason(unsigned long err)
{
	return err != 0 && ERR_GET_LIB(err) == ERR_LIB_SSL ? ERR_GET_REASON(err) : 0;
}

/* Whether the certificate was what failed: the handshake says so, or it
 * failed with a verify result and no other reason. */
static bool verify_failed(const struct vp_tls_obs *o)
{
	if (o->verify_result == X509_V_OK)
		return false;
	return ssl_reason(o->err) == SSL_R_CERTIFICATE_VERIFY_FAILED || o->err == 0;
}

/* The server's certificate did not parse (garbage, or DER cut short): the
 * ASN.1 library's error comes first in the queue, before the SSL library's
 * "ASN1 lib". A client parses no other ASN.1 from a server this early but
 * signatures and a CertificateRequest's names, which Cloud SQL and
 * Memorystore do not send. (The X.509 library's errors are not counted:
 * some are this host's own, such as a ca_file with a certificate twice.) */
static bool cert_unparsed(const struct vp_tls_obs *o)
{
	return o->err != 0 && ERR_GET_LIB(o->err) == ERR_LIB_ASN1;
}

static enum reason reason_of(const struct vp_tls_obs *o)
{
	switch (o->event) {
	case VP_TLS_EV_TIMEOUT:
		return R_TIMEOUT;
	case VP_TLS_EV_NOT_OFFERED:
		return R_NOT_OFFERED;
	case VP_TLS_EV_FAILED:
		break;
	default:
		return R_HANDSHAKE_FAILURE;
	}
	if (verify_failed(o)) {
		if (o->verify_result == X509_V_ERR_CERT_HAS_EXPIRED)
			return R_CERT_EXPIRED;
		if (has_long(unknown_ca_codes, N_ELEMS(unknown_ca_codes), o->verify_result))
			return R_UNKNOWN_CA;
		if (o->verify_result == X509_V_ERR_HOSTNAME_MISMATCH ||
		    o->verify_result == X509_V_ERR_IP_ADDRESS_MISMATCH)
			return R_HOSTNAME_MISMATCH;
		if (o->verify_result == X509_V_ERR_CERT_NOT_YET_VALID)
			return R_CERT_NOT_YET_VALID;
		if (o->verify_result == X509_V_ERR_CERT_REVOKED)
			return R_CERT_REVOKED;
		return R_CERT_INVALID;
	}
	if (cert_unparsed(o))
		return R_CERT_INVALID;
	if (has_int(version_codes, N_ELEMS(version_codes), ssl_reason(o->err)))
		return R_PROTOCOL_VERSION;
	return R_HANDSHAKE_FAILURE;
}

/* "; the server's certificate expired 3 days ago" and the like. */
static void days_phrase(int days, char *out, size_t len)
{
	if (days == VP_CERT_DAYS_UNKNOWN)
		out[0] = '\0';
	else if (days < 0)
		vp_textf(out, len, "; the server's certificate expired %d day%s ago", -days,
		         days == -1 ? "" : "s");
	else
		vp_textf(out, len, "; the server's certificate expires in %d day%s", days,
		         days == 1 ? "" : "s");
}

static void detail_failed(const struct vp_tls_obs *o, struct vp_verdict_out *out)
{
	const char *why = o->err ? ERR_reason_error_string(o->err) : NULL;
	char code[48];
	char days[80];

	/* The strings are there once libssl is initialised, as it is before any
	 * handshake; the code stands in otherwise. */
	if (o->err && why == NULL) {
		vp_textf(code, sizeof(code), "OpenSSL error %08lX", o->err);
		why = code;
	}

	days_phrase(o->cert_days_left, days, sizeof(days));
	if (verify_failed(o))
		vp_textf(out->detail, sizeof(out->detail), "the server's certificate was refused: %s "
		         "(X509 verify error %ld)%s", X509_verify_cert_error_string(o->verify_result),
		         o->verify_result, days);
	else if (cert_unparsed(o))
		vp_textf(out->detail, sizeof(out->detail), "the server's certificate is malformed: "
		         "%s", why ? why : "OpenSSL gave no reason");
	else
		vp_textf(out->detail, sizeof(out->detail), "the TLS handshake failed: %s%s",
		         why ? why : "OpenSSL gave no reason", days);
}

static void detail_of(const struct vp_tls_obs *o, struct vp_verdict_out *out)
{
	char preview[VP_PREVIEW_BYTES * 4 + 8];

	switch (o->event) {
	case VP_TLS_EV_FAILED:
		detail_failed(o, out);
		return;
	case VP_TLS_EV_NOT_TLS:
		vp_preview(o->first, o->first_len, preview, sizeof(preview));
		vp_textf(out->detail, sizeof(out->detail), "the server answered the TLS ClientHello "
		         "with bytes that are not TLS; they begin %s", preview);
		return;
	case VP_TLS_EV_CLOSED:
	case VP_TLS_EV_RESET:
		vp_textf(out->detail, sizeof(out->detail), "the server %s the connection during the TLS "
		         "handshake, after %zu bytes of it", o->event == VP_TLS_EV_CLOSED ? "closed" :
		         "reset", o->bytes);
		return;
	case VP_TLS_EV_TIMEOUT:
		vp_textf(out->detail, sizeof(out->detail), "no complete TLS handshake within %u ms "
		         "(%zu bytes of it read)", o->timeout_ms, o->bytes);
		return;
	case VP_TLS_EV_TOO_LARGE:
		vp_textf(out->detail, sizeof(out->detail), "the TLS handshake passed the %d KiB bound "
		         "(%zu bytes read)", VP_TLS_HANDSHAKE_MAX / 1024, o->bytes);
		return;
	case VP_TLS_EV_NOT_OFFERED:
	default:
		vp_textf(out->detail, sizeof(out->detail), "TLS is required and the server does not "
		         "offer it ('N' to SSLRequest)");
		return;
	}
}

static void hint_unknown_ca(const struct vp_tls_obs *o, char *h, size_t n)
{
	char where[SHOWN_PATH_MAX + 48];

	if (o->ca_file)
		vp_textf(where, sizeof(where), "the CA in ca_file '%.*s'", SHOWN_PATH_MAX, o->ca_file);
	else
		vp_textf(where, sizeof(where), "this host's system CAs");
	if (o->kind == VP_KIND_POSTGRES)
		vp_textf(h, n, "The server's certificate does not chain to %s. For Cloud SQL, download "
		         "the instance's server CA with gcloud sql instances describe INSTANCE "
		         "--format='value(serverCaCert.cert)' > server-ca.pem and set \"ca_file\" to "
		         "it; during a CA rotation the file needs both CAs.", where);
	else if (o->kind == VP_KIND_REDISS)
		vp_textf(h, n, "The server's certificate does not chain to %s. Memorystore in-transit "
		         "encryption: get the CA with gcloud redis instances describe INSTANCE "
		         "--region=REGION --format='value(serverCaCerts)' and set \"ca_file\" to it "
		         "(both CAs while one is rotated).", where);
	else
		vp_textf(h, n, "The server's certificate does not chain to %s: set \"ca_file\" to the "
		         "CA that signed it, or have the server send its intermediate certificates.",
		         where);
}

static void hint_expired(const struct vp_tls_obs *o, char *h, size_t n)
{
	if (o->kind == VP_KIND_POSTGRES)
		vp_textf(h, n, "A certificate in the server's chain has expired. Check this host's "
		         "clock first (timedatectl); then rotate Cloud SQL's server certificate "
		         "(gcloud sql ssl server-ca-certs create --instance=INSTANCE, then gcloud sql "
		         "ssl server-ca-certs rotate --instance=INSTANCE) and refresh ca_file.");
	else if (o->kind == VP_KIND_REDISS)
		vp_textf(h, n, "A certificate in the server's chain has expired. Check this host's "
		         "clock first (timedatectl); then put the instance's current CA in ca_file "
		         "(gcloud redis instances describe INSTANCE --region=REGION "
		         "--format='value(serverCaCerts)'): Memorystore's CAs last 10 years and a "
		         "new one appears after 5.");
	else
		vp_textf(h, n, "A certificate in the server's chain has expired. Check this host's "
		         "clock first (timedatectl); then renew the server's certificate.");
}

static void hint_hostname(const struct vp_tls_obs *o, char *h, size_t n)
{
	const char *host = o->host ? o->host : "(no name)";

	if (o->kind == VP_KIND_POSTGRES)
		vp_textf(h, n, "The certificate does not name '%.*s'. Cloud SQL's server certificates "
		         "name the instance (PROJECT:INSTANCE), not its private IP, so verify-full "
		         "fails on an IP: use \"tls\": \"require\" with \"ca_file\" (the chain is still "
		         "checked, like libpq's verify-ca), or connect by a DNS name the certificate "
		         "carries.", SHOWN_PATH_MAX, host);
	else
		vp_textf(h, n, "The certificate does not name '%.*s': connect by a name in its "
		         "subjectAltName, or reissue the certificate with this name or IP address.",
		         SHOWN_PATH_MAX, host);
}

static void hint_handshake(const struct vp_tls_obs *o, char *h, size_t n)
{
	if (o->event == VP_TLS_EV_NOT_TLS)
		vp_textf(h, n, "The server answered in plaintext: this port does not speak TLS. "
		         "Memorystore without in-transit encryption is reached with redis:// on 6379 "
		         "(with it, TLS only, on 6378); a proxy in between may not pass TLS through.");
	else if (o->event == VP_TLS_EV_TOO_LARGE ||
	         ssl_reason(o->err) == SSL_R_EXCESSIVE_MESSAGE_SIZE)   /* our bound, OpenSSL's */
		vp_textf(h, n, "The server sent more TLS handshake than any Cloud SQL or Memorystore "
		         "chain: check what listens on this port.");
	else if (o->event != VP_TLS_EV_FAILED ||
	         has_int(client_cert_codes, N_ELEMS(client_cert_codes), ssl_reason(o->err)))
		vp_textf(h, n, "The server ended the TLS handshake: it may require a client "
		         "certificate, which vpcprobe does not send (Cloud SQL ssl_mode "
		         "TRUSTED_CLIENT_CERTIFICATE_REQUIRED, Redis tls-auth-clients yes), or accept "
		         "no cipher this host's OpenSSL offers; the server's log names the cause.");
	else
		vp_textf(h, n, "The TLS handshake failed: compare the server's TLS settings (versions, "
		         "ciphers, certificate) with what this host's OpenSSL accepts; the server's "
		         "log names its side of the failure.");
}

static void hint_of(const struct vp_tls_obs *o, enum reason r, char *h, size_t n)
{
	switch (r) {
	case R_UNKNOWN_CA:
		hint_unknown_ca(o, h, n);
		return;
	case R_CERT_EXPIRED:
		hint_expired(o, h, n);
		return;
	case R_HOSTNAME_MISMATCH:
		hint_hostname(o, h, n);
		return;
	case R_CERT_NOT_YET_VALID:
		vp_textf(h, n, "The server's certificate is not valid yet: the clock of this host or of "
		         "the server is wrong (timedatectl on both), or the certificate was issued "
		         "with a start date in the future.");
		return;
	case R_CERT_REVOKED:
		vp_textf(h, n, "The server's certificate was revoked: install a new one on the server, "
		         "and the CA that signs it in ca_file.");
		return;
	case R_CERT_INVALID:
		vp_textf(h, n, "The server's certificate is malformed or not fit for a server: reissue "
		         "it. Cloud SQL's and Memorystore's own certificates pass, so something else "
		         "may answer on this address; check what listens there.");
		return;
	case R_PROTOCOL_VERSION:
		vp_textf(h, n, "The server and vpcprobe share no TLS version: vpcprobe speaks TLS 1.2 "
		         "and 1.3, as Cloud SQL and Memorystore do; a server limited to TLS 1.0 or 1.1 "
		         "needs newer settings (PostgreSQL ssl_min_protocol_version, Redis "
		         "tls-protocols), unless the port does not speak TLS at all.");
		return;
	case R_NOT_OFFERED:
		vp_textf(h, n, "PostgreSQL offers TLS only with ssl = on and a certificate. Cloud SQL "
		         "always offers it, so 'N' means something else answers (the Cloud SQL Auth "
		         "Proxy speaks plaintext locally and encrypts itself): set \"tls\": \"prefer\" "
		         "for it, or turn ssl on.");
		return;
	case R_TIMEOUT:
		vp_textf(h, n, "The server accepted the connection but did not finish the TLS "
		         "handshake: a plaintext service may be waiting for a command (rediss:// "
		         "against a Redis without TLS: use redis://), or the server is overloaded.");
		return;
	case R_HANDSHAKE_FAILURE:
	default:
		hint_handshake(o, h, n);
		return;
	}
}

const char *vp_tls_reason(const struct vp_tls_obs *obs)
{
	return reason_names[reason_of(obs)];
}

void vp_tls_classify(const struct vp_tls_obs *obs, struct vp_verdict_out *out)
{
	enum reason r = reason_of(obs);

	memset(out, 0, sizeof(*out));
	out->verdict = r == R_TIMEOUT ? VP_VERDICT_TIMEOUT : VP_VERDICT_TLS_ERROR;
	out->reason = VP_REASON_PROTOCOL;
	if (obs->event == VP_TLS_EV_TIMEOUT)
		out->err = ETIMEDOUT;
	else if (obs->event == VP_TLS_EV_RESET)
		out->err = obs->sys_err;
	vp_textf(out->reason_text, sizeof(out->reason_text), "%s", reason_names[r]);
	detail_of(obs, out);
	hint_of(obs, r, out->hint, sizeof(out->hint));
}

bool vp_tls_looks_like_tls(const uint8_t *buf, size_t len)
{
	/* ContentType handshake (22) or alert (21), then ProtocolVersion 3.x
	 * with x from 0 (SSL 3.0, in a record header still) to 4. */
	if (len >= 1 && buf[0] != 22 && buf[0] != 21)
		return false;
	if (len >= 2 && buf[1] != 3)
		return false;
	if (len >= 3 && buf[2] > 4)
		return false;
	return true;
}
