/* SCRAM-SHA-256, client side (RFC 5802 section 3 for the algorithm,
 * RFC 7677 for the SHA-256 profile). Every secret that passes through a
 * local buffer is wiped before returning. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "probes/scram.h"

#define GS2_HEADER "n,,"         /* no channel binding, no authzid */
#define GS2_HEADER_B64 "biws"    /* base64("n,,") */
#define AUTH_MESSAGE_MAX (3 * VP_SCRAM_MSG_MAX)

static bool b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Strict base64: whole quads, padding only at the end. Returns the decoded
 * length or -EBADMSG / -ENOSPC. */
static int b64_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
	uint8_t tmp[VP_SCRAM_MSG_MAX];
	size_t pad = 0;
	int n;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(tmp))
		return -EBADMSG;
	while (pad < 2 && in[len - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < len - pad; i++)
		if (!b64_char((unsigned char)in[i]))
			return -EBADMSG;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
	if (n < 0 || (size_t)n < pad)
		return -EBADMSG;
	n -= (int)pad;
	if ((size_t)n > outlen) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return -ENOSPC;
	}
	memcpy(out, tmp, (size_t)n);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return n;
}

/* RFC 5802 5.1: "," and "=" in a user name become "=2C" and "=3D". */
static int saslname(const char *user, char *out, size_t outlen)
{
	size_t used = 0;

	for (; *user != '\0'; user++) {
		const char *rep = *user == ',' ? "=2C" : *user == '=' ? "=3D" : NULL;
		size_t n = rep != NULL ? 3 : 1;

		if (used + n + 1 > outlen)
			return -ENOSPC;
		memcpy(out + used, rep != NULL ? rep : user, n);
		used += n;
	}
	out[used] = '\0';
	return 0;
}

static bool printable_nonce(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e || s[i] == ',')
			return false;
	return n > 0;
}

int vp_scram_client_first(struct vp_scram *s, const char *user, const char *nonce, char *out,
                          size_t outlen)
{
	char name[VP_SCRAM_MSG_MAX / 2];
	uint8_t raw[VP_SCRAM_NONCE_LEN / 4 * 3];
	int n;

	memset(s, 0, sizeof(*s));
	if (nonce == NULL) {
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			return -EIO;
		(void)EVP_EncodeBlock((unsigned char *)s->nonce, raw, sizeof(raw)); /* 24 chars */
	} else if (printable_nonce(nonce, strlen(nonce)) && strlen(nonce) < sizeof(s->nonce) / 2) {
		snprintf(s->nonce, sizeof(s->nonce), "%s", nonce);
	} else {
		return -EINVAL;
	}
	if (saslname(user, name, sizeof(name)) < 0)
		return -ENOSPC;
	n = snprintf(s->client_first_bare, sizeof(s->client_first_bare), "n=%s,r=%s", name,
	             s->nonce);
	if (n < 0 || (size_t)n >= sizeof(s->client_first_bare))
		return -ENOSPC;
	n = snprintf(out, outlen, GS2_HEADER "%s", s->client_first_bare);
	if (n < 0 || (size_t)n >= outlen)
		return -ENOSPC;
	return n;
}

struct server_first {
	const char *nonce;     /* borrowed: into the message copy */
	size_t nonce_len;
	uint8_t salt[VP_SCRAM_SALT_MAX];
	size_t salt_len;
	uint32_t iterations;
};

static int parse_iterations(const char *v, size_t n, uint32_t *ret)
{
	uint32_t x = 0;

	if (n == 0 || n > 9 || v[0] == '0')
		return n > 9 ? -ERANGE : -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EBADMSG;
		x = x * 10 + (uint32_t)(v[i] - '0');
	}
	if (x > VP_SCRAM_ITER_MAX)
		return -ERANGE;
	*ret = x;
	return 0;
}

/* "r=NONCE,s=SALT,i=COUNT[,ext...]", in that order (RFC 5802 7). */
static int parse_server_first(const struct vp_scram *s, const char *msg, struct server_first *sf)
{
	static const char keys[] = "rsi";
	const char *p = msg;
	int r;

	if (strncmp(msg, "m=", 2) == 0)
		return -ENOTSUP;
	for (int k = 0; k < 3; k++) {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

		if (n < 2 || p[0] != keys[k] || p[1] != '=')
			return -EBADMSG;
		if (k == 0) {
			sf->nonce = p + 2;
			sf->nonce_len = n - 2;
		} else if (k == 1) {
			r = b64_decode(p + 2, n - 2, sf->salt, sizeof(sf->salt));
			if (r <= 0)
				return -EBADMSG;
			sf->salt_len = (size_t)r;
		} else {
			r = parse_iterations(p + 2, n - 2, &sf->iterations);
			if (r < 0)
				return r;
		}
		if (end == NULL && k < 2)
			return -EBADMSG;
		p = end != NULL ? end + 1 : p + n;
	}
	/* The server's nonce extends ours; anything else is a replay or a mix-up. */
	if (!printable_nonce(sf->nonce, sf->nonce_len) || sf->nonce_len <= strlen(s->nonce) ||
	    strncmp(sf->nonce, s->nonce, strlen(s->nonce)) != 0)
		return -EBADMSG;
	return 0;
}

static bool hmac(const uint8_t *key, size_t keylen, const void *data, size_t len,
                 uint8_t out[VP_SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	return HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &n) != NULL &&
	       n == VP_SCRAM_KEY_LEN;
}

/* Keys, proof and server signature for 'auth' (RFC 5802 3). */
static int compute(struct vp_scram *s, const void *password, size_t pwlen,
                   const struct server_first *sf, const char *auth, size_t auth_len,
                   uint8_t proof[VP_SCRAM_KEY_LEN])
{
	uint8_t salted[VP_SCRAM_KEY_LEN], client_key[VP_SCRAM_KEY_LEN];
	uint8_t stored_key[VP_SCRAM_KEY_LEN], client_sig[VP_SCRAM_KEY_LEN];
	uint8_t server_key[VP_SCRAM_KEY_LEN];
	int r = -EIO;

	if (PKCS5_PBKDF2_HMAC(password, (int)pwlen, sf->salt, (int)sf->salt_len,
	                      (int)sf->iterations, EVP_sha256(), sizeof(salted), salted) != 1)
		goto out;
	if (!hmac(salted, sizeof(salted), "Client Key", 10, client_key) ||
	    SHA256(client_key, sizeof(client_key), stored_key) == NULL ||
	    !hmac(stored_key, sizeof(stored_key), auth, auth_len, client_sig) ||
	    !hmac(salted, sizeof(salted), "Server Key", 10, server_key) ||
	    !hmac(server_key, sizeof(server_key), auth, auth_len, s->server_signature))
		goto out;
	for (size_t i = 0; i < VP_SCRAM_KEY_LEN; i++)
		proof[i] = client_key[i] ^ client_sig[i];
	s->have_signature = true;
	r = 0;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(server_key, sizeof(server_key));
	return r;
}

int vp_scram_client_final(struct vp_scram *s, const void *password, size_t pwlen,
                          const char *server_first, size_t sflen, char *out, size_t outlen)
{
	char msg[VP_SCRAM_MSG_MAX];
	char auth[AUTH_MESSAGE_MAX];
	char proof64[VP_SCRAM_KEY_LEN * 2];
	uint8_t proof[VP_SCRAM_KEY_LEN];
	struct server_first sf = { 0 };
	int n, m, r;

	s->have_signature = false;
	if (sflen == 0 || sflen >= sizeof(msg) || memchr(server_first, '\0', sflen) != NULL)
		return -EBADMSG;
	memcpy(msg, server_first, sflen);
	msg[sflen] = '\0';
	r = parse_server_first(s, msg, &sf);
	if (r < 0)
		return r;
	/* The message without its proof, first into 'out'; the proof follows. */
	n = snprintf(out, outlen, "c=" GS2_HEADER_B64 ",r=%.*s", (int)sf.nonce_len, sf.nonce);
	if (n < 0 || (size_t)n >= outlen)
		return -ENOSPC;
	m = snprintf(auth, sizeof(auth), "%s,%s,%s", s->client_first_bare, msg, out);
	if (m < 0 || (size_t)m >= sizeof(auth))
		return -ENOSPC;
	r = compute(s, password, pwlen, &sf, auth, (size_t)m, proof);
	if (r < 0)
		goto out;
	(void)EVP_EncodeBlock((unsigned char *)proof64, proof, sizeof(proof)); /* 44 chars */
	m = snprintf(out + n, outlen - (size_t)n, ",p=%s", proof64);
	r = m < 0 || (size_t)m >= outlen - (size_t)n ? -ENOSPC : n + m;
out:
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(sf.salt, sizeof(sf.salt));
	return r;
}

int vp_scram_verify_final(const struct vp_scram *s, const char *server_final, size_t len)
{
	uint8_t sig[VP_SCRAM_KEY_LEN + 3];
	const char *end;
	size_t n;
	int r;

	if (!s->have_signature || len < 2 || len >= VP_SCRAM_MSG_MAX ||
	    memchr(server_final, '\0', len) != NULL)
		return -EBADMSG;
	if (server_final[0] == 'e' && server_final[1] == '=')
		return -EPERM;
	if (server_final[0] != 'v' || server_final[1] != '=')
		return -EBADMSG;
	end = memchr(server_final, ',', len);
	n = (end != NULL ? (size_t)(end - server_final) : len) - 2;
	r = b64_decode(server_final + 2, n, sig, sizeof(sig));
	if (r < 0)
		return -EBADMSG;
	if (r != VP_SCRAM_KEY_LEN)
		return -EACCES;
	return CRYPTO_memcmp(sig, s->server_signature, VP_SCRAM_KEY_LEN) == 0 ? 0 : -EACCES;
}

void vp_scram_done(struct vp_scram *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
}
