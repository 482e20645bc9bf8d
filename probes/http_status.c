/* The http(s) probe's decisions (probes/http.h). Pure: what libcurl
 * reported in, a verdict, a reason, a detail and a hint out. Like relayd's
 * check_http_code(), nothing here touches a socket, the loop or the clock.
 *
 * Every detail quotes the server only escaped (probes/wire.h): bodies,
 * Server headers and curl's error text end up on terminals, the status page
 * and at the collector. */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes/http.h"
#include "probes/tls.h"
#include "probes/wire.h"

#define DEFAULT_LO 200
#define DEFAULT_HI 399
#define SHOWN_MAX 120      /* an escaped Server header or curl message in a detail */

bool vp_http_status_expected(const struct vp_status_ranges *expect, long status)
{
	if (expect == NULL || expect->n == 0)
		return status >= DEFAULT_LO && status <= DEFAULT_HI;
	for (unsigned i = 0; i < expect->n; i++)
		if (status >= expect->r[i].lo && status <= expect->r[i].hi)
			return true;
	return false;
}

void vp_http_expect_text(const struct vp_status_ranges *expect, char *out, size_t outlen)
{
	size_t used = 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (expect == NULL || expect->n == 0) {
		vp_textf(out, outlen, "%d-%d", DEFAULT_LO, DEFAULT_HI);
		return;
	}
	for (unsigned i = 0; i < expect->n && used < outlen; i++) {
		const struct vp_status_range *r = &expect->r[i];

		if (r->lo == r->hi)
			vp_textf(out + used, outlen - used, "%s%u", i ? "," : "", r->lo);
		else
			vp_textf(out + used, outlen - used, "%s%u-%u", i ? "," : "", r->lo, r->hi);
		used += strlen(out + used);
	}
}

/* What a status means to someone debugging Cloud Run to VPC traffic. The
 * first row whose range holds the status speaks. */
struct status_row {
	uint16_t lo, hi;
	const char *name;      /* the reason phrase, "" for a range */
	const char *hint;
};

static const struct status_row status_rows[] = {
	{ 401, 401, "Unauthorized", "The network path works; the service wants credentials. A "
	  "Cloud Run service or an IAP-protected backend needs an identity token for a caller "
	  "with roles/run.invoker (or IAP-secured Web App User); otherwise check the "
	  "application's own authentication." },
	{ 403, 403, "Forbidden", "The network path works; the service refused this caller. "
	  "Check IAM (roles/run.invoker for Cloud Run, IAP access), a Cloud Armor or ingress "
	  "policy (internal-only ingress admits only VPC traffic), and allow lists of source "
	  "addresses in the application." },
	{ 404, 404, "Not Found", "The network path works; the service has no such path. Check "
	  "the target's path, and, behind a load balancer or a virtual host, the Host header "
	  "(host_header) and the URL map." },
	{ 407, 407, "Proxy Authentication Required", "A proxy answered instead of the service: "
	  "the traffic goes through a proxy that wants credentials." },
	{ 421, 421, "Misdirected Request", "The server does not serve this host name on this "
	  "connection: check host_header and, for https, the name in the URL (SNI)." },
	{ 429, 429, "Too Many Requests", "The service or a proxy in front of it is rate "
	  "limiting: lower the probe rate or raise the limit." },
	{ 502, 502, "Bad Gateway", "A load balancer or proxy answered: its backend failed or "
	  "closed the connection. Check the backend service's health (its health checks need a "
	  "firewall rule admitting 35.191.0.0/16 and 130.211.0.0/22) and the backend's logs." },
	{ 503, 503, "Service Unavailable", "A load balancer with no healthy backend answers "
	  "503, as does a service that is overloaded or starting. Check the backend's health "
	  "checks (and the firewall rule for 35.191.0.0/16 and 130.211.0.0/22), then the "
	  "service's logs." },
	{ 504, 504, "Gateway Timeout", "A load balancer or proxy got no answer from its backend "
	  "in time: check the backend's latency, the backend service timeout, and that the "
	  "proxy can reach the backend through the firewall." },
	{ 500, 599, "", "The network path works; the service itself failed on this request. "
	  "See the application's logs on the target." },
	{ 400, 499, "", "The network path works; the service rejected the request. Check the "
	  "target's path and host_header." },
	{ 300, 399, "", "The service redirects: it wants another URL (often http:// to "
	  "https:// or a login page). Probe the final URL, or add the status to "
	  "expect_status." },
	{ 100, 299, "", "The service answered, with a status that expect_status does not list: "
	  "check expect_status." },
};

/* The reason phrases of the statuses a health check usually sees
 * (RFC 9110 section 15); the server's own phrase is not trusted. */
static const char *phrase(long status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 500: return "Internal Server Error";
	default: break;
	}
	for (size_t i = 0; i < sizeof(status_rows) / sizeof(status_rows[0]); i++)
		if (status == status_rows[i].lo && status == status_rows[i].hi)
			return status_rows[i].name;
	return "";
}

static const struct status_row *status_row(long status)
{
	for (size_t i = 0; i < sizeof(status_rows) / sizeof(status_rows[0]); i++)
		if (status >= status_rows[i].lo && status <= status_rows[i].hi)
			return &status_rows[i];
	return NULL;
}

static void not_http(const struct vp_http_answer *a, struct vp_verdict_out *out)
{
	char preview[VP_PREVIEW_BYTES * 4 + 8];

	out->verdict = VP_VERDICT_PROTOCOL_ERROR;
	out->reason = VP_REASON_UNEXPECTED_REPLY;
	vp_preview(a->body, a->body_len, preview, sizeof(preview));
	vp_textf(out->detail, sizeof(out->detail), "not an HTTP reply to GET %.80s: it begins %s",
	         a->path, preview);
	vp_textf(out->hint, sizeof(out->hint), "Something answers on this port, but not HTTP: "
	         "check that the port belongs to the web service and not to a database, Redis or "
	         "another service%s.", a->kind == VP_KIND_HTTP ?
	         ", and that it does not want TLS (https://)" : "");
}

/* " from 'nginx' via '1.1 google'": who answered, escaped. */
static void from_words(const struct vp_http_answer *a, char *out, size_t outlen)
{
	char server[SHOWN_MAX], via[SHOWN_MAX];
	bool has_server = a->server != NULL && a->server[0] != '\0';
	bool has_via = a->via != NULL && a->via[0] != '\0';

	if (has_server)
		(void)vp_escape(a->server, strlen(a->server), server, sizeof(server));
	if (has_via)
		(void)vp_escape(a->via, strlen(a->via), via, sizeof(via));
	vp_textf(out, outlen, "%s%s%s%s%s%s", has_server ? " from '" : "", has_server ? server : "",
	         has_server ? "'" : "", has_via ? " via '" : "", has_via ? via : "",
	         has_via ? "'" : "");
}

/* ", TLS 3.1 ms, certificate valid for 89 more days" */
static void tls_words(const struct vp_http_answer *a, char *out, size_t outlen)
{
	size_t used;

	out[0] = '\0';
	if (a->kind != VP_KIND_HTTPS)
		return;
	if (a->tls_ms >= 0)
		vp_textf(out, outlen, ", TLS handshake %.1f ms", a->tls_ms);
	used = strlen(out);
	if (a->cert_days_known)
		vp_textf(out + used, outlen - used, ", certificate valid for %ld more day%s",
		         a->cert_days, a->cert_days == 1 ? "" : "s");
}

void vp_http_decide_status(const struct vp_http_answer *a, struct vp_verdict_out *out)
{
	const struct status_row *row = status_row(a->status);
	char expect[VP_HTTP_EXPECT_TEXT_MAX];
	char server[2 * SHOWN_MAX + 32];
	char preview[VP_PREVIEW_BYTES * 4 + 8];
	char tls[96];
	const char *name = phrase(a->status);

	memset(out, 0, sizeof(*out));
	if (a->status <= 0 || a->status > 999) {
		not_http(a, out);
		return;
	}
	vp_textf(out->reason_text, sizeof(out->reason_text), "http_%03ld", a->status);
	out->reason = VP_REASON_PROTOCOL;
	from_words(a, server, sizeof(server));
	tls_words(a, tls, sizeof(tls));
	if (vp_http_status_expected(a->expect, a->status)) {
		out->verdict = VP_VERDICT_OK;
		vp_textf(out->detail, sizeof(out->detail), "HTTP %ld%s%s to GET %.80s%s, %zu body "
		         "bytes%s%s", a->status, name[0] ? " " : "", name, a->path, server,
		         a->body_total, a->body_cut ? " (read up to the 64 KiB bound)" : "", tls);
		return;
	}
	out->verdict = VP_VERDICT_PROTOCOL_ERROR;
	vp_http_expect_text(a->expect, expect, sizeof(expect));
	vp_preview(a->body, a->body_len, preview, sizeof(preview));
	vp_textf(out->detail, sizeof(out->detail), "HTTP %ld%s%s to GET %.80s%s, expected %s; "
	         "body %s", a->status, name[0] ? " " : "", name, a->path, server, expect,
	         a->body_len ? preview : "empty");
	vp_textf(out->hint, sizeof(out->hint), "%s", row ? row->hint :
	         "The service answered with a status outside the HTTP range: check what listens "
	         "on this port.");
}

/* ---- failures after the connect ---- */

/* The reasons come from the TLS module's classifier (probes/tls.h), so
 * that https, postgres and rediss name the same fault alike. */
const char *vp_tls_verify_reason(long x509_err)
{
	struct vp_tls_obs o = {
		.event = VP_TLS_EV_FAILED, .verify = VP_VERIFY_HOST,
		/* X509_V_OK with a refused peer: curl's own host name check. */
		.verify_result = x509_err == X509_V_OK ? X509_V_ERR_HOSTNAME_MISMATCH : x509_err,
		.cert_days_left = VP_CERT_DAYS_UNKNOWN,
	};

	return vp_tls_reason(&o);
}

struct tls_hint {
	const char *reason;
	const char *hint;
};

static const struct tls_hint tls_hints[] = {
	{ "cert_expired", "The server's certificate has expired: renew it on the target, or on "
	  "the load balancer that ends TLS in front of it. Every client that verifies it fails "
	  "until then." },
	{ "cert_not_yet_valid", "The certificate is not valid yet: the clock of the server or of "
	  "this VM is wrong, or the certificate was issued with a later start date." },
	{ "unknown_ca", "The certificate does not chain to a CA this probe trusts: set ca_file "
	  "to the CA that issued it (a private CA, such as one from Certificate Authority "
	  "Service), or make the server send its intermediate certificates." },
	{ "hostname_mismatch", "The certificate is valid, but not for the name probed: probe the "
	  "name it was issued for (the URL's host, or host_header, which also sets SNI) or reissue "
	  "it with this name in subjectAltName; an IP address needs an IP address SAN." },
	{ "cert_revoked", "The server's certificate was revoked: install a new one." },
	{ "cert_invalid", "The server's certificate is malformed or not fit for a server: "
	  "reissue it." },
	{ "protocol_version", "The server and vpcprobe share no TLS version: the server offers "
	  "only versions older than TLS 1.2. Enable TLS 1.2 or 1.3 on the server." },
	{ "handshake_failure", "The TLS handshake failed before a certificate was judged: check "
	  "the server's TLS settings (certificate and key, ciphers, client certificates) and its "
	  "logs." },
};

static const char *tls_hint(const char *reason)
{
	for (size_t i = 0; i < sizeof(tls_hints) / sizeof(tls_hints[0]); i++)
		if (strcmp(tls_hints[i].reason, reason) == 0)
			return tls_hints[i].hint;
	return tls_hints[sizeof(tls_hints) / sizeof(tls_hints[0]) - 1].hint;
}

static bool says(const char *text, const char *what)
{
	return text != NULL && strcasestr(text, what) != NULL;
}

/* OpenSSL's packed error code in curl's message, which curl writes with
 * ERR_error_string_n(): "...: error:0A00042E:SSL routines::tlsv1 alert
 * protocol version". 0 when the message has none. */
static unsigned long openssl_code(const char *text)
{
	const char *at = text;
	char hex[9];

	while (at != NULL && (at = strstr(at, "error:")) != NULL) {
		at += strlen("error:");
		if (strspn(at, "0123456789abcdefABCDEF") == 8 && at[8] == ':') {
			memcpy(hex, at, 8);
			hex[8] = '\0';
			return strtoul(hex, NULL, 16);
		}
	}
	return 0;
}

/* The tls_error reason, from the TLS module's classifier. A port that
 * answers in plain text is told by curl's words (OpenSSL reads an HTTP
 * reply's first bytes as a record of a wrong version); the certificate by
 * the verify result; anything else by OpenSSL's error code. */
static const char *tls_reason(const struct vp_http_failure *f, bool *not_tls)
{
	struct vp_tls_obs o = {
		.event = VP_TLS_EV_FAILED, .kind = f->kind, .verify = VP_VERIFY_HOST,
		.verify_result = f->verify_result, .host = f->host,
		.cert_days_left = VP_CERT_DAYS_UNKNOWN,
	};

	*not_tls = says(f->errtext, "wrong version number") ||
	           says(f->errtext, "packet length too long") || says(f->errtext, "http request");
	if (f->rc == CURLE_PEER_FAILED_VERIFICATION) {
		/* curl checks the host name itself, after OpenSSL accepted the
		 * chain, and reports X509_V_OK or X509_V_ERR_UNSPECIFIED with it:
		 * its words are the evidence. */
		if (says(f->errtext, "target host name") || f->verify_result == X509_V_OK)
			o.verify_result = X509_V_ERR_HOSTNAME_MISMATCH;
	} else if (*not_tls) {
		o.event = VP_TLS_EV_NOT_TLS;
	} else {
		o.err = openssl_code(f->errtext);
	}
	return vp_tls_reason(&o);
}

static void set_reason(struct vp_verdict_out *out, enum vp_verdict v, enum vp_reason r,
                       const char *text, int err)
{
	out->verdict = v;
	out->reason = r;
	out->err = err;
	if (text != NULL)
		vp_textf(out->reason_text, sizeof(out->reason_text), "%s", text);
}

static void decide_tls(const struct vp_http_failure *f, const char *curl_said,
                       struct vp_verdict_out *out)
{
	bool not_tls = false;
	const char *reason;
	char days[64] = "";

	reason = tls_reason(f, &not_tls);
	set_reason(out, VP_VERDICT_TLS_ERROR, VP_REASON_PROTOCOL, reason, 0);
	if (f->cert_days_known && f->cert_days < 0)
		vp_textf(days, sizeof(days), "; the certificate expired %ld day%s ago",
		         -f->cert_days, f->cert_days == -1 ? "" : "s");
	else if (f->cert_days_known)
		vp_textf(days, sizeof(days), "; the certificate is valid for %ld more day%s",
		         f->cert_days, f->cert_days == 1 ? "" : "s");
	vp_textf(out->detail, sizeof(out->detail), "TLS with '%.80s' failed: %s%s", f->host,
	         curl_said, days);
	if (not_tls)
		vp_textf(out->hint, sizeof(out->hint), "The server's first bytes are not TLS: port "
		         "%u speaks plain text, most likely HTTP. Use http://, or the service's TLS "
		         "port.", f->port);
	else
		vp_textf(out->hint, sizeof(out->hint), "%s", tls_hint(reason));
}

/* A TLS failure that is the peer going away: told like the same thing
 * without TLS. */
static bool tls_peer_gone(const struct vp_http_failure *f)
{
	return f->os_errno == ECONNRESET || f->os_errno == EPIPE ||
	       says(f->errtext, "unexpected eof") || says(f->errtext, "SSL_ERROR_SYSCALL");
}

static bool is_tls_failure(int rc)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CERTPROBLEM:
		return true;
	default:
		return false;
	}
}

static void decide_gone(const struct vp_http_failure *f, const char *curl_said,
                        struct vp_verdict_out *out)
{
	bool reset = f->os_errno == ECONNRESET || f->os_errno == EPIPE;
	const char *when = f->bytes_read ? "in the middle of the reply" :
	                   is_tls_failure(f->rc) ? "during the TLS handshake" : "before replying";

	set_reason(out, VP_VERDICT_RESET, reset ? VP_REASON_RESET_BEFORE_REPLY :
	           VP_REASON_CLOSED_BEFORE_REPLY, NULL, (int)f->os_errno);
	vp_textf(out->detail, sizeof(out->detail), "the server accepted the connection, then %s "
	         "it %s (%zu HTTP bytes read): %s", reset ? "reset" : "closed", when,
	         f->bytes_read, curl_said);
	vp_textf(out->hint, sizeof(out->hint), "Port %u accepts connections but the service "
	         "does not answer HTTP on them: an overloaded or crashing service, a proxy or load "
	         "balancer without a healthy backend, %s; check the target's logs.", f->port,
	         f->kind == VP_KIND_HTTPS ? "a server that wants no TLS here or a client "
	         "certificate" : "a service that wants TLS (https://) here");
}

void vp_http_decide_failure(const struct vp_http_failure *f, struct vp_verdict_out *out)
{
	char said[SHOWN_MAX + 8];
	const char *text = f->errtext != NULL && f->errtext[0] ? f->errtext :
	                   curl_easy_strerror((CURLcode)f->rc);

	memset(out, 0, sizeof(*out));
	(void)vp_escape(text, strlen(text), said, sizeof(said));
	switch (f->rc) {
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		decide_gone(f, said, out);
		return;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		set_reason(out, VP_VERDICT_PROTOCOL_ERROR, VP_REASON_UNEXPECTED_REPLY, NULL, 0);
		vp_textf(out->detail, sizeof(out->detail), "not a valid HTTP reply: %s", said);
		vp_textf(out->hint, sizeof(out->hint), "Something answers on port %u, but not "
		         "proper HTTP: check that the port belongs to the web service and not to "
		         "another service or a broken proxy.", f->port);
		return;
	case CURLE_OPERATION_TIMEDOUT:
		set_reason(out, VP_VERDICT_TIMEOUT, VP_REASON_REPLY_TIMEOUT, NULL, ETIMEDOUT);
		vp_textf(out->detail, sizeof(out->detail), "no complete reply: %s", said);
		return;
	case CURLE_SSL_CACERT_BADFILE:
		set_reason(out, VP_VERDICT_LOCAL_ERROR, VP_REASON_PROTOCOL, "ca_file_unreadable", 0);
		vp_textf(out->detail, sizeof(out->detail), "the CA file could not be used: %s", said);
		vp_textf(out->hint, sizeof(out->hint), "This is the agent's own trouble: ca_file "
		         "must hold PEM certificates readable by vpcprobe; nothing is known about the "
		         "target yet.");
		return;
	case CURLE_OUT_OF_MEMORY:
		set_reason(out, VP_VERDICT_LOCAL_ERROR, VP_REASON_NO_BUFFERS, NULL, ENOMEM);
		vp_textf(out->detail, sizeof(out->detail), "out of memory: %s", said);
		vp_textf(out->hint, sizeof(out->hint), "The diagnostic VM is short of memory; "
		         "nothing is known about the target yet.");
		return;
	default:
		break;
	}
	if (is_tls_failure(f->rc) && f->rc != CURLE_PEER_FAILED_VERIFICATION && tls_peer_gone(f))
		decide_gone(f, said, out);
	else if (is_tls_failure(f->rc))
		decide_tls(f, said, out);
	else {
		set_reason(out, VP_VERDICT_LOCAL_ERROR, VP_REASON_LOCAL_OTHER, NULL, 0);
		vp_textf(out->detail, sizeof(out->detail), "the request could not be made: %s (curl "
		         "error %d)", said, f->rc);
		vp_textf(out->hint, sizeof(out->hint), "This is the agent's own trouble (the URL or "
		         "curl); nothing is known about the target yet.");
	}
}
