/* PostgreSQL protocol 3.0 messages for a login, and their parser. Every
 * length the server sends is checked against what is left of the message
 * before anything is read, so a hostile length can only end the parse. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "probes/pgwire.h"
#include "probes/wire.h"

#define PG_PROTOCOL_3_0 0x00030000u
#define PG_SSL_REQUEST_CODE 80877103u  /* 1234 << 16 | 5679 */

void vp_pg_ssl_request(uint8_t out[VP_PG_SSL_REQUEST_LEN])
{
	vp_put_be32(out, VP_PG_SSL_REQUEST_LEN);
	vp_put_be32(out + 4, PG_SSL_REQUEST_CODE);
}

void vp_pg_terminate(uint8_t out[VP_PG_TERMINATE_LEN])
{
	out[0] = 'X';
	vp_put_be32(out + 1, 4);
}

/* A bounded writer: once a put does not fit, 'over' stays set. */
struct wbuf {
	uint8_t *p;
	size_t cap;
	size_t len;
	bool over;
};

static void put(struct wbuf *w, const void *data, size_t len)
{
	if (w->over || len > w->cap - w->len) {
		w->over = true;
		return;
	}
	memcpy(w->p + w->len, data, len);
	w->len += len;
}

static void put_str(struct wbuf *w, const char *s)
{
	put(w, s, strlen(s) + 1);
}

static void put_be32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];

	vp_put_be32(b, v);
	put(w, b, sizeof(b));
}

/* Writes the length field at 'at' once the message is complete. */
static int finish_msg(struct wbuf *w, size_t at)
{
	if (w->over || w->len > VP_PG_MSG_MAX)
		return -ENOSPC;
	vp_put_be32(w->p + at, (uint32_t)(w->len - at));
	return (int)w->len;
}

int vp_pg_startup(uint8_t *out, size_t cap, const char *user, const char *database,
                  const char *application_name)
{
	struct wbuf w = { .p = out, .cap = cap };

	if (user == NULL || user[0] == '\0')
		return -EINVAL;
	put_be32(&w, 0); /* the length, filled in below */
	put_be32(&w, PG_PROTOCOL_3_0);
	put_str(&w, "user");
	put_str(&w, user);
	if (database != NULL && database[0] != '\0') {
		put_str(&w, "database");
		put_str(&w, database);
	}
	if (application_name != NULL) {
		put_str(&w, "application_name");
		put_str(&w, application_name);
	}
	put(&w, "", 1);
	return finish_msg(&w, 0);
}

int vp_pg_password(uint8_t *out, size_t cap, const void *pw, size_t pwlen)
{
	struct wbuf w = { .p = out, .cap = cap };

	if (memchr(pw, '\0', pwlen) != NULL)
		return -EINVAL;
	put(&w, "p", 1);
	put_be32(&w, 0);
	put(&w, pw, pwlen);
	put(&w, "", 1);
	return finish_msg(&w, 1);
}

int vp_pg_sasl_initial(uint8_t *out, size_t cap, const char *mechanism, const void *data,
                       size_t len)
{
	struct wbuf w = { .p = out, .cap = cap };

	put(&w, "p", 1);
	put_be32(&w, 0);
	put_str(&w, mechanism);
	put_be32(&w, (uint32_t)len);
	put(&w, data, len);
	return finish_msg(&w, 1);
}

int vp_pg_sasl_response(uint8_t *out, size_t cap, const void *data, size_t len)
{
	struct wbuf w = { .p = out, .cap = cap };

	put(&w, "p", 1);
	put_be32(&w, 0);
	put(&w, data, len);
	return finish_msg(&w, 1);
}

static int md5_hex(const void *a, size_t alen, const void *b, size_t blen, char hex[33])
{
	static const char digits[] = "0123456789abcdef";
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int r = -EIO;

	if (ctx == NULL)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 || EVP_DigestUpdate(ctx, a, alen) != 1 ||
	    EVP_DigestUpdate(ctx, b, blen) != 1 || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 ||
	    mdlen != 16)
		goto out;
	for (unsigned i = 0; i < 16; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[32] = '\0';
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

int vp_pg_md5_password(const char *user, const void *pw, size_t pwlen, const uint8_t salt[4],
                       char out[VP_PG_MD5_LEN + 1])
{
	char inner[33];
	int r;

	r = md5_hex(pw, pwlen, user, strlen(user), inner);
	if (r == 0)
		r = md5_hex(inner, 32, salt, 4, out + 3);
	if (r == 0)
		memcpy(out, "md5", 3);
	OPENSSL_cleanse(inner, sizeof(inner)); /* as good as the password for md5 */
	return r;
}

int vp_pg_frame(const uint8_t *buf, size_t len, struct vp_pg_msg *msg)
{
	uint32_t n;

	if (len < 5)
		return 0;
	n = vp_be32(buf + 1);
	if (n < 4 || n > VP_PG_MSG_MAX)
		return -EBADMSG;
	if (len < (size_t)n + 1)
		return 0;
	msg->type = buf[0];
	msg->body = buf + 5;
	msg->len = n - 4;
	return (int)n + 1;
}

/* SASL: a list of NUL-terminated names, ended by an empty one. */
static int parse_mechanisms(const uint8_t *s, size_t len, struct vp_pg_auth *out)
{
	size_t used = 0;
	unsigned shown = 0;

	for (;;) {
		const uint8_t *nul = memchr(s, '\0', len);
		size_t n;

		if (nul == NULL)
			return -EBADMSG;
		n = (size_t)(nul - s);
		if (n == 0)
			return 0;
		if (n == 13 && memcmp(s, "SCRAM-SHA-256", 13) == 0)
			out->scram_sha_256 = true;
		if (shown++ < VP_PG_MECHS_MAX && used + 2 < sizeof(out->mechanisms)) {
			if (used > 0) {
				memcpy(out->mechanisms + used, ", ", 3);
				used += 2;
			}
			(void)vp_escape(s, n, out->mechanisms + used, sizeof(out->mechanisms) - used);
			used += strlen(out->mechanisms + used);
		}
		s += n + 1;
		len -= n + 1;
	}
}

int vp_pg_parse_auth(const struct vp_pg_msg *m, struct vp_pg_auth *out)
{
	memset(out, 0, sizeof(*out));
	if (m->type != 'R' || m->len < 4)
		return -EBADMSG;
	out->code = vp_be32(m->body);
	out->data = m->body + 4;
	out->data_len = m->len - 4;
	switch (out->code) {
	case VP_PG_AUTH_MD5:
		if (out->data_len != 4)
			return -EBADMSG;
		memcpy(out->salt, out->data, 4);
		return 0;
	case VP_PG_AUTH_SASL:
		return parse_mechanisms(out->data, out->data_len, out);
	default:
		return 0;
	}
}

const char *vp_pg_auth_method(uint32_t code)
{
	switch (code) {
	case VP_PG_AUTH_OK: return "no password (trust)";
	case VP_PG_AUTH_KRB5: return "Kerberos V5";
	case VP_PG_AUTH_CLEARTEXT: return "a cleartext password";
	case VP_PG_AUTH_MD5: return "an MD5 password";
	case VP_PG_AUTH_SCM: return "SCM credentials";
	case VP_PG_AUTH_GSS: return "GSSAPI";
	case VP_PG_AUTH_SSPI: return "SSPI";
	case VP_PG_AUTH_SASL: return "SASL";
	default: return "an unknown method";
	}
}

static bool valid_sqlstate(const uint8_t *s, size_t n)
{
	if (n != 5)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

/* Fields are a type byte and a NUL-terminated string each, ended by a zero
 * type byte (55.8, "Error and Notice Message Fields"). */
int vp_pg_parse_error(const struct vp_pg_msg *m, struct vp_pg_error *out)
{
	const uint8_t *s = m->body;
	size_t len = m->len;

	memset(out, 0, sizeof(*out));
	while (len > 0 && s[0] != '\0') {
		const uint8_t *nul = memchr(s + 1, '\0', len - 1);
		size_t n;

		if (nul == NULL)
			return -EBADMSG;
		n = (size_t)(nul - s - 1);
		if (s[0] == 'S' && out->severity[0] == '\0')
			(void)vp_escape(s + 1, n, out->severity, sizeof(out->severity));
		else if (s[0] == 'C' && valid_sqlstate(s + 1, n))
			memcpy(out->sqlstate, s + 1, 6); /* with its NUL */
		else if (s[0] == 'M')
			(void)vp_escape(s + 1, n, out->message, sizeof(out->message));
		s += n + 2;
		len -= n + 2;
	}
	return len > 0 ? 0 : -EBADMSG;
}

struct sqlstate_row {
	const char *code;
	const char *reason;
	const char *hint;
};

/* PostgreSQL documentation, Appendix A. The hints speak of Cloud SQL, where
 * these come from in practice; each also covers a self-managed server. */
static const struct sqlstate_row sqlstates[] = {
	{ "28000", "pg_hba_rejected",
	  "The server turned this client away before any password: no pg_hba rule admits its "
	  "address, user, database or lack of SSL, or the user does not exist or may not log in "
	  "(the message says which). On Cloud SQL pg_hba cannot be edited and authorized networks "
	  "do not apply to private IP: use an existing user (`gcloud sql users list "
	  "--instance=INSTANCE`) or IAM database authentication, with SSL if the instance requires "
	  "it. On your own server, add a host line for the connector's /28 to pg_hba.conf." },
	{ "28P01", "auth_failed",
	  "The password or user is wrong: compare the password_file with the Cloud SQL user's "
	  "password (`gcloud sql users set-password USER --instance=INSTANCE` to reset it), or for "
	  "IAM database authentication check that the service account is added as a database user." },
	{ "57P03", "starting_up",
	  "The server is starting up, shutting down or recovering: wait for the Cloud SQL instance "
	  "to be RUNNABLE (`gcloud sql operations list --instance=INSTANCE`), then probe again; if it "
	  "lasts, read the instance's logs." },
	{ "53300", "too_many_connections",
	  "Every connection slot is taken: Cloud Run instances times the pool size exceeds "
	  "max_connections. Lower the pool size or max instances, put a pooler in front, or raise the "
	  "max_connections flag (`gcloud sql instances patch INSTANCE "
	  "--database-flags=max_connections=N`)." },
	{ "3D000", "database_missing",
	  "The database does not exist: set the target's \"database\" to one that does (`gcloud sql "
	  "databases list --instance=INSTANCE`) or create it; the application's connection string "
	  "probably names the same database." },
};

void vp_pg_error_reason(const struct vp_pg_error *e, struct vp_verdict_out *out)
{
	out->reason = VP_REASON_PROTOCOL;
	for (size_t i = 0; i < sizeof(sqlstates) / sizeof(sqlstates[0]); i++) {
		if (strcmp(e->sqlstate, sqlstates[i].code) != 0)
			continue;
		vp_textf(out->reason_text, sizeof(out->reason_text), "%s", sqlstates[i].reason);
		vp_textf(out->hint, sizeof(out->hint), "%s", sqlstates[i].hint);
		return;
	}
	if (e->sqlstate[0] != '\0')
		vp_textf(out->reason_text, sizeof(out->reason_text), "sqlstate_%s", e->sqlstate);
	else
		vp_textf(out->reason_text, sizeof(out->reason_text), "sqlstate_missing");
	vp_textf(out->hint, sizeof(out->hint),
	         "PostgreSQL refused the login with SQLSTATE %s: look the code up in the PostgreSQL "
	         "documentation (Appendix A, Error Codes) and read the Cloud SQL instance's logs "
	         "(`gcloud logging read 'resource.type=\"cloudsql_database\"'`).",
	         e->sqlstate[0] != '\0' ? e->sqlstate : "(none)");
}
