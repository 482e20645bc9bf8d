/* RESP2 replies and commands (https://redis.io/docs/reference/protocol-spec/).
 * Only what PING and AUTH can answer is accepted: status, error, integer,
 * bulk, and an array header; RESP3 types never come unless HELLO 3 was
 * sent, which a probe does not do. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "probes/resp.h"
#include "probes/wire.h"

static int put(uint8_t *out, size_t cap, size_t *used, const void *data, size_t len)
{
	if (len > cap - *used)
		return -ENOSPC;
	memcpy(out + *used, data, len);
	*used += len;
	return 0;
}

int vp_resp_command(uint8_t *out, size_t cap, size_t argc, const char *const *argv,
                    const size_t *lens)
{
	char head[32];
	size_t used = 0;
	int n;

	n = snprintf(head, sizeof(head), "*%zu\r\n", argc);
	if (put(out, cap, &used, head, (size_t)n) < 0)
		return -ENOSPC;
	for (size_t i = 0; i < argc; i++) {
		n = snprintf(head, sizeof(head), "$%zu\r\n", lens[i]);
		if (put(out, cap, &used, head, (size_t)n) < 0 ||
		    put(out, cap, &used, argv[i], lens[i]) < 0 ||
		    put(out, cap, &used, "\r\n", 2) < 0)
			return -ENOSPC;
	}
	return used > VP_SEND_MAX ? -ENOSPC : (int)used;
}

/* The length of the line at 'buf' without its CRLF: >= 0 when complete,
 * -EAGAIN when more bytes are needed, -EBADMSG for a bare CR or LF or an
 * overlong line. */
static long line_len(const uint8_t *buf, size_t len)
{
	size_t max = len < VP_RESP_LINE_MAX + 1 ? len : VP_RESP_LINE_MAX + 1;

	for (size_t i = 0; i < max; i++) {
		if (buf[i] == '\n')
			return -EBADMSG;
		if (buf[i] != '\r')
			continue;
		if (i + 1 == len)
			return -EAGAIN;
		return buf[i + 1] == '\n' ? (long)i : -EBADMSG;
	}
	return len <= VP_RESP_LINE_MAX ? -EAGAIN : -EBADMSG;
}

/* A decimal in -1..max, as a bulk or array length: no sign but '-' for -1,
 * no leading zeros, no spaces. */
static bool parse_count(const uint8_t *s, size_t n, long long max, long long *ret)
{
	long long x = 0;

	if (n == 2 && s[0] == '-' && s[1] == '1') {
		*ret = -1;
		return true;
	}
	if (n == 0 || n > 10 || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (s[i] - '0');
	}
	if (x > max)
		return false;
	*ret = x;
	return true;
}

int vp_resp_parse(const uint8_t *buf, size_t len, struct vp_resp_reply *out)
{
	long n;

	if (len == 0)
		return 0;
	if (buf[0] != '+' && buf[0] != '-' && buf[0] != ':' && buf[0] != '$' && buf[0] != '*')
		return -EBADMSG;
	n = line_len(buf + 1, len - 1);
	if (n == -EAGAIN)
		return 0;
	if (n < 0)
		return -EBADMSG;
	memset(out, 0, sizeof(*out));
	out->type = (char)buf[0];
	out->text = buf + 1;
	out->len = (size_t)n;
	if (out->type == '+' || out->type == '-' || out->type == ':')
		return (int)n + 3;
	if (!parse_count(buf + 1, (size_t)n, out->type == '$' ? VP_RESP_BULK_MAX : 1024 * 1024,
	                 &out->count))
		return -EBADMSG;
	out->text = NULL;
	out->len = 0;
	if (out->type == '*' || out->count < 0)
		return (int)n + 3;
	/* The bulk body and its CRLF follow the header. */
	if (len < (size_t)n + 3 + (size_t)out->count + 2)
		return 0;
	if (buf[n + 3 + out->count] != '\r' || buf[n + 3 + out->count + 1] != '\n')
		return -EBADMSG;
	out->text = buf + n + 3;
	out->len = (size_t)out->count;
	return (int)(n + 3 + out->count + 2);
}

struct error_row {
	const char *prefix;    /* the start of the error line, with its word boundary */
	const char *reason;
	const char *hint;
};

/* Hints in Memorystore terms first; each also covers a self-managed Redis. */
static const struct error_row error_rows[] = {
	{ "NOAUTH ", "auth_required",
	  "AUTH is enabled on this Redis: get the Memorystore AUTH string with `gcloud redis "
	  "instances get-auth-string INSTANCE --region=REGION`, put it in a file and name that "
	  "file in the target's password_file; the application needs the same string." },
	{ "WRONGPASS ", "auth_failed",
	  "Redis refused the password (or the username): the Memorystore AUTH string may have been "
	  "rotated; get the current one with `gcloud redis instances get-auth-string INSTANCE "
	  "--region=REGION` and update the password_file. On your own Redis, check requirepass or "
	  "the ACL user." },
	{ "ERR invalid password", "auth_failed",
	  "Redis refused the password: the Memorystore AUTH string may have been rotated; get the "
	  "current one with `gcloud redis instances get-auth-string INSTANCE --region=REGION` and "
	  "update the password_file. On your own Redis, check requirepass." },
	{ "DENIED ", "protected_mode",
	  "This Redis runs in protected mode: it has no password and refuses clients that are not "
	  "on loopback. Memorystore never does this, so this is a self-managed Redis: set "
	  "requirepass (and the target's password_file), or bind it to the VM's internal address "
	  "with protected-mode no behind a firewall rule that admits only the connector's range." },
	{ "LOADING ", "loading",
	  "Redis is loading its dataset into memory after a restart, failover or maintenance: wait "
	  "and probe again; a Memorystore Standard tier failover shows this for a while." },
	{ "MASTERDOWN ", "masterdown",
	  "This replica lost its primary and does not serve stale data: check the primary; on "
	  "Memorystore, a failover or maintenance is probably under way." },
	{ "ERR max number of clients reached", "max_clients",
	  "Redis has maxclients connections open: Cloud Run instances times the pool size is too "
	  "many. Lower the pool size or max instances, or raise maxclients (a Memorystore "
	  "configuration parameter)." },
};

/* The first word, lowercased, [a-z_] only, bounded. */
static void first_word(const uint8_t *s, size_t len, char *out, size_t outlen)
{
	size_t n = 0;

	for (size_t i = 0; i < len && s[i] != ' ' && n + 1 < outlen; i++) {
		unsigned char c = s[i];

		if (c >= 'A' && c <= 'Z')
			out[n++] = (char)(c - 'A' + 'a');
		else if ((c >= 'a' && c <= 'z') || c == '_')
			out[n++] = (char)c;
		else
			out[n++] = '_';
	}
	out[n] = '\0';
	if (n == 0)
		snprintf(out, outlen, "redis_error");
}

static bool starts_with(const uint8_t *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	/* "LOADING " also matches a bare "LOADING". */
	if (n > 0 && prefix[n - 1] == ' ' && len == n - 1)
		n--;
	return len >= n && memcmp(s, prefix, n) == 0;
}

void vp_resp_error_reason(const uint8_t *line, size_t len, struct vp_verdict_out *out)
{
	char word[VP_PROTO_REASON_MAX + 1];

	out->reason = VP_REASON_PROTOCOL;
	for (size_t i = 0; i < sizeof(error_rows) / sizeof(error_rows[0]); i++) {
		if (!starts_with(line, len, error_rows[i].prefix))
			continue;
		vp_textf(out->reason_text, sizeof(out->reason_text), "%s", error_rows[i].reason);
		vp_textf(out->hint, sizeof(out->hint), "%s", error_rows[i].hint);
		return;
	}
	first_word(line, len, word, sizeof(word));
	vp_textf(out->reason_text, sizeof(out->reason_text), "%s", word);
	vp_textf(out->hint, sizeof(out->hint),
	         "Redis answered with an error: read the detail, the server's log and its "
	         "configuration (`redis-cli INFO`, or the Memorystore instance's logs in Cloud "
	         "Logging).");
}
