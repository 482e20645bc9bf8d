/* The peer agent's answer row by row (issue 3): an HTTP status and a body
 * in, a reply out; a reply's table and the probed address in, the verdict,
 * reason and detail out. Hostile answers are rows too: they must give a
 * reason, never a crash and never a wrong verdict. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/peer.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define URL "http://198.18.0.2:9464"

/* One socket of /api/v1/listeners, as agent/status_api.c writes it. */
#define SOCK(addr, fam, v6, pid, proc) \
	"{\"address\":\"" addr "\",\"port\":8080,\"family\":\"" fam "\",\"v6only\":" v6 \
	",\"pid\":" pid ",\"process\":" proc ",\"queue\":{\"current\":0,\"max\":128}," \
	"\"overflowing\":false}"
#define TABLE(scope, socks) \
	"{\"source\":\"netlink\",\"truncated\":false,\"ports\":[{\"port\":8080,\"scope\":\"" \
	scope "\",\"sockets\":[" socks "],\"overflowing\":false}]}\n"
#define PID "4242"
#define PROC "\"python3\""
#define ERR(code, body, tok, st, why) { code, body, tok, st, why, NULL, 0, 0, NULL }

struct reply_row {
	long code;
	const char *body;
	bool had_token;
	int status;            /* 0, or < 0 */
	const char *why;       /* a substring of rep.why, when status < 0 */
	const char *probed;    /* status 0: the address that was refused */
	enum vp_verdict verdict;
	enum vp_reason reason;
	const char *detail;    /* a substring of the detail */
};

static const struct reply_row rows[] = {
	/* The verdicts. */
	{ 200, TABLE("loopback_only", SOCK("127.0.0.1", "ipv4", "null", PID, PROC)), true, 0, NULL,
	  "198.18.0.2", VP_VERDICT_LOCALHOST_ONLY, VP_REASON_LOOPBACK_BIND,
	  "port 8080 on 198.18.0.2 listens on 127.0.0.1 only (pid 4242 python3), per the agent at "
	  URL "; bind it to 0.0.0.0 or to the VM's internal address" },
	{ 200, TABLE("loopback_only", SOCK("127.0.0.1", "ipv4", "null", PID, PROC) ","
	             SOCK("::1", "ipv6", "true", PID, PROC)), true, 0, NULL,
	  "198.18.0.2", VP_VERDICT_LOCALHOST_ONLY, VP_REASON_LOOPBACK_BIND,
	  "listens on 127.0.0.1 and ::1 only (pid 4242 python3)" },
	{ 200, TABLE("loopback_only", SOCK("::1", "ipv6", "true", "null", "null")), false, 0, NULL,
	  "fd00:198:18::2", VP_VERDICT_LOCALHOST_ONLY, VP_REASON_LOOPBACK_BIND,
	  "port 8080 on fd00:198:18::2 listens on ::1 only, per the agent at " URL },
	{ 200, TABLE("specific_address", SOCK("198.18.0.3", "ipv4", "null", PID, PROC)), true, 0, NULL,
	  "198.18.0.2", VP_VERDICT_REFUSED, VP_REASON_BOUND_OTHER_ADDRESS,
	  "port 8080 on 198.18.0.2 listens on 198.18.0.3 only (pid 4242 python3), not on "
	  "198.18.0.2, per the agent at " URL },
	/* [::] with IPV6_V6ONLY takes no IPv4: another address for an IPv4 probe. */
	{ 200, TABLE("specific_address", SOCK("::", "ipv6", "true", PID, PROC)), true, 0, NULL,
	  "198.18.0.2", VP_VERDICT_REFUSED, VP_REASON_BOUND_OTHER_ADDRESS, "listens on :: only" },
	{ 200, TABLE("not_listening", ""), true, 0, NULL,
	  "198.18.0.2", VP_VERDICT_REFUSED, VP_REASON_RST_TO_SYN,
	  "connection refused: 198.18.0.2 answered the SYN to port 8080 with a reset; the agent "
	  "at " URL " confirms that nothing listens on port 8080" },
	/* A socket that takes the probed address: the reset came from elsewhere. */
	{ 200, TABLE("all_interfaces", SOCK("0.0.0.0", "ipv4", "null", PID, PROC)), true, 0, NULL,
	  "198.18.0.2", VP_VERDICT_REFUSED, VP_REASON_RST_TO_SYN,
	  "connection refused, yet per the agent at " URL " port 8080 listens on 0.0.0.0" },
	{ 200, TABLE("all_interfaces", SOCK("::", "ipv6", "false", PID, PROC)), true, 0, NULL,
	  "198.18.0.2", VP_VERDICT_REFUSED, VP_REASON_RST_TO_SYN, "listens on :: (pid 4242" },
	{ 200, TABLE("specific_address", SOCK("198.18.0.2", "ipv4", "null", PID, PROC)), true, 0, NULL,
	  "198.18.0.2", VP_VERDICT_REFUSED, VP_REASON_RST_TO_SYN, "which takes 198.18.0.2" },
	/* Unknown keys are a newer peer's; a process name is masked. */
	{ 200, "{\"ports\":[{\"port\":8080,\"scope\":\"loopback_only\",\"new\":1,\"sockets\":["
	  "{\"address\":\"127.0.0.1\",\"family\":\"ipv4\",\"port\":8080,\"pid\":7,"
	  "\"process\":\"ev\\u001b[31mil\\n\"}]}],\"future\":[]}", true, 0, NULL,
	  "198.18.0.2", VP_VERDICT_LOCALHOST_ONLY, VP_REASON_LOOPBACK_BIND, "(pid 7 ev?[31mil?)" },
	{ 200, "{\"ports\":[{\"port\":8080,\"scope\":\"loopback_only\",\"sockets\":["
	  "{\"address\":\"127.0.0.1\",\"family\":\"ipv4\",\"port\":8080,\"pid\":7,"
	  "\"process\":\"caf\\u00e9\"}]}]}", true, 0, NULL,
	  "198.18.0.2", VP_VERDICT_LOCALHOST_ONLY, VP_REASON_LOOPBACK_BIND, "(pid 7 caf?" "?)" },

	/* The peer could not be asked, or its answer is no table. */
	ERR(401, "the status token is required\n", true, -EACCES,
	  "HTTP 401: the token in agent_token_file is not the agent's status token"),
	ERR(401, "the status token is required\n", false, -EACCES,
	  "HTTP 401: the agent wants its status token; set agent_token_file"),
	ERR(404, "not found; see / for the page\n", true, -EPROTO, "HTTP 404: no /api/v1/listeners"),
	ERR(503, "{\"error\":\"this host's listener table could not be read: Permission denied\"}",
	  true, -EPROTO, "HTTP 503: this host's listener table could not be read: Permission denied"),
	ERR(500, "<html>oops</html>", true, -EPROTO, "HTTP 500"),
	ERR(302, "", true, -EPROTO, "HTTP 302"),
	ERR(200, "<html>hello</html>", true, -EBADMSG,
	  "its answer is not a listener table: not JSON (line 1, column 1)"),
	ERR(200, "", true, -EBADMSG, "not a listener table: not JSON"),
	ERR(200, "[1,2]", true, -EBADMSG, "expected a JSON object"),
	ERR(200, "{\"ports\":[],\"ports\":[]}", true, -EBADMSG, "not JSON"),
	ERR(200, "{\"source\":\"netlink\"}", true, -EBADMSG, "ports: expected an array of the one port"),
	ERR(200, "{\"ports\":[{},{}]}", true, -EBADMSG, "ports: expected an array of the one port"),
	ERR(200, "{\"ports\":[7]}", true, -EBADMSG, "ports[0]: expected an object"),
	ERR(200, "{\"truncated\":\"no\",\"ports\":[{}]}", true, -EBADMSG, "truncated: expected"),
	ERR(200, "{\"ports\":[{\"port\":8081,\"scope\":\"not_listening\",\"sockets\":[]}]}", true,
	  -EBADMSG, "ports[0].port: expected 8080, the port asked for"),
	ERR(200, "{\"ports\":[{\"port\":\"8080\",\"scope\":\"not_listening\",\"sockets\":[]}]}", true,
	  -EBADMSG, "ports[0].port: expected 8080"),
	ERR(200, "{\"ports\":[{\"port\":8080,\"scope\":\"everywhere\",\"sockets\":[]}]}", true,
	  -EBADMSG, "ports[0].scope: expected all_interfaces"),
	ERR(200, "{\"ports\":[{\"port\":8080,\"scope\":null,\"sockets\":[]}]}", true,
	  -EBADMSG, "ports[0].scope: expected"),
	ERR(200, "{\"ports\":[{\"port\":8080,\"scope\":\"not_listening\",\"sockets\":{}}]}", true,
	  -EBADMSG, "ports[0].sockets: expected an array"),
	ERR(200, TABLE("loopback_only", ""), true, -EBADMSG,
	  "ports[0].scope: 'loopback_only' does not agree with 0 sockets"),
	ERR(200, TABLE("not_listening", SOCK("127.0.0.1", "ipv4", "null", PID, PROC)), true, -EBADMSG,
	  "'not_listening' does not agree with 1 socket"),
	ERR(200, TABLE("loopback_only", "1"), true, -EBADMSG, "ports[0].sockets[0]: expected an object"),
	ERR(200, TABLE("loopback_only", SOCK("999.0.0.1", "ipv4", "null", PID, PROC)), true, -EBADMSG,
	  "ports[0].sockets[0].address: not an IPv4 or IPv6 address"),
	ERR(200, TABLE("loopback_only", SOCK("::1", "ipv4", "null", PID, PROC)), true, -EBADMSG,
	  "sockets[0].address: not an IPv4"),
	ERR(200, TABLE("loopback_only", SOCK("127.0.0.1", "ipx", "null", PID, PROC)), true, -EBADMSG,
	  "sockets[0].address"),
	ERR(200, TABLE("loopback_only", "{\"address\":1,\"family\":\"ipv4\"}"), true, -EBADMSG,
	  "sockets[0]: expected \"address\" and \"family\" strings"),
	ERR(200, TABLE("loopback_only", "{\"address\":\"127.0.0.1\",\"family\":\"ipv4\",\"port\":1}"),
	  true, -EBADMSG, "ports[0].sockets[0].port: expected 8080"),
	ERR(200, TABLE("loopback_only", SOCK("::1", "ipv6", "\"yes\"", PID, PROC)), true, -EBADMSG,
	  "sockets[0].v6only: expected true, false or null"),
	ERR(200, TABLE("loopback_only", SOCK("127.0.0.1", "ipv4", "null", "\"4242\"", "null")), true,
	  -EBADMSG, "sockets[0].pid: expected a process id or null"),
	ERR(200, TABLE("loopback_only", SOCK("127.0.0.1", "ipv4", "null", "-1", "null")), true,
	  -EBADMSG, "sockets[0].pid"),
	ERR(200, TABLE("loopback_only", SOCK("127.0.0.1", "ipv4", "null", "7", "[]")), true,
	  -EBADMSG, "sockets[0].process: expected a string or null"),
};

static void addr_of(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':') != NULL) {
		ss->ss_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)ss)->sin6_addr), 1);
	} else {
		ss->ss_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, text, &((struct sockaddr_in *)ss)->sin_addr), 1);
	}
}

/* What the probe said before the peer was asked. */
static void refused(struct vp_verdict_out *v)
{
	memset(v, 0, sizeof(*v));
	v->verdict = VP_VERDICT_REFUSED;
	v->reason = VP_REASON_RST_TO_SYN;
	snprintf(v->detail, sizeof(v->detail), "connection refused");
}

START_TEST(test_reply_row)
{
	const struct reply_row *row = &rows[_i];
	struct vp_peer_reply *rep = malloc(sizeof(*rep));
	struct sockaddr_storage ss;
	struct vp_verdict_out v;

	ck_assert_ptr_nonnull(rep);
	vp_peer_read_reply(row->code, row->body, strlen(row->body), 8080, row->had_token, rep);
	ck_assert_msg(rep->status == row->status, "row %d: status %d, expected %d (%s)", _i,
	              rep->status, row->status, rep->why);
	if (row->status < 0) {
		ck_assert_msg(strstr(rep->why, row->why) != NULL, "row %d: why '%s' lacks '%s'", _i,
		              rep->why, row->why);
		refused(&v);
		vp_peer_unasked("198.18.0.2", 8080, URL, rep->why, &v);
		ck_assert_int_eq(v.verdict, VP_VERDICT_REFUSED);
		ck_assert_int_eq(v.reason, VP_REASON_RST_TO_SYN);
		ck_assert_msg(strstr(v.detail, "the agent at " URL " could not be asked for its "
		              "listeners: ") != NULL, "row %d: %s", _i, v.detail);
		free(rep);
		return;
	}
	ck_assert_int_eq(rep->answer.port, 8080);
	addr_of(row->probed, &ss);
	refused(&v);
	vp_peer_refine(&rep->answer, (const struct sockaddr *)&ss, row->probed, URL, &v);
	ck_assert_msg(v.verdict == row->verdict, "row %d: verdict %s, expected %s", _i,
	              vp_verdict_name(v.verdict), vp_verdict_name(row->verdict));
	ck_assert_msg(v.reason == row->reason, "row %d: reason %s, expected %s", _i,
	              vp_reason_name(v.reason), vp_reason_name(row->reason));
	ck_assert_msg(strstr(v.detail, row->detail) != NULL, "row %d: detail '%s' lacks '%s'", _i,
	              v.detail, row->detail);
	ck_assert_msg(v.hint[0] != '\0', "row %d: no hint", _i);
	free(rep);
}
END_TEST

/* A table that the peer cut short and that shows nothing on the port
 * proves nothing: the verdict stays, and the detail says why. */
START_TEST(test_truncated_empty)
{
	static const char body[] = "{\"truncated\":true,\"ports\":[{\"port\":8080,"
	                           "\"scope\":\"not_listening\",\"sockets\":[]}]}";
	struct vp_peer_reply *rep = malloc(sizeof(*rep));
	struct sockaddr_storage ss;
	struct vp_verdict_out v;

	ck_assert_ptr_nonnull(rep);
	vp_peer_read_reply(200, body, strlen(body), 8080, true, rep);
	ck_assert_int_eq(rep->status, 0);
	ck_assert(rep->answer.truncated);
	addr_of("198.18.0.2", &ss);
	refused(&v);
	vp_peer_refine(&rep->answer, (const struct sockaddr *)&ss, "198.18.0.2", URL, &v);
	ck_assert_int_eq(v.verdict, VP_VERDICT_REFUSED);
	ck_assert_int_eq(v.reason, VP_REASON_RST_TO_SYN);
	ck_assert_msg(strstr(v.detail, "could not be asked for its listeners: its listener table "
	              "was cut short") != NULL, "%s", v.detail);
	free(rep);
}
END_TEST

/* More sockets than VP_PEER_SOCKETS_MAX: refused whole, not read past. */
START_TEST(test_too_many_sockets)
{
	size_t cap = (VP_PEER_SOCKETS_MAX + 2) * 256 + 256, o = 0;
	char *body = malloc(cap);
	struct vp_peer_reply *rep = malloc(sizeof(*rep));

	ck_assert_ptr_nonnull(body);
	ck_assert_ptr_nonnull(rep);
	o += (size_t)snprintf(body + o, cap - o, "{\"ports\":[{\"port\":8080,\"scope\":"
	                      "\"loopback_only\",\"sockets\":[");
	for (int i = 0; i <= VP_PEER_SOCKETS_MAX; i++)
		o += (size_t)snprintf(body + o, cap - o, "%s" SOCK("127.0.0.1", "ipv4", "null", PID, PROC),
		                      i ? "," : "");
	o += (size_t)snprintf(body + o, cap - o, "]}]}");
	ck_assert_uint_lt(o, cap);
	vp_peer_read_reply(200, body, o, 8080, true, rep);
	ck_assert_int_lt(rep->status, 0);
	ck_assert_msg(strstr(rep->why, "ports[0].sockets: more than 256 sockets") != NULL, "%s",
	              rep->why);
	free(body);
	free(rep);
}
END_TEST

/* Bytes that are not text, or a body that stops mid-way: a reason, no crash. */
START_TEST(test_binary_and_cut)
{
	static const char bin[] = "{\"ports\":[{\"port\":8080,\0\xff\xfe}";
	static const char full[] = TABLE("loopback_only", SOCK("127.0.0.1", "ipv4", "null", PID, PROC));
	struct vp_peer_reply *rep = malloc(sizeof(*rep));

	ck_assert_ptr_nonnull(rep);
	vp_peer_read_reply(200, bin, sizeof(bin) - 1, 8080, true, rep);
	ck_assert_int_lt(rep->status, 0);
	for (size_t n = 0; n + 1 < sizeof(full) - 1; n++) {
		vp_peer_read_reply(200, full, n, 8080, true, rep);
		ck_assert_msg(rep->status < 0, "a body cut at %zu bytes was taken", n);
		ck_assert(strstr(rep->why, "not a listener table") != NULL);
	}
	vp_peer_read_reply(200, full, sizeof(full) - 1, 8080, true, rep);
	ck_assert_int_eq(rep->status, 0);
	free(rep);
}
END_TEST

static Suite *peer_suite(void)
{
	Suite *s = suite_create("peer");
	TCase *tc = tcase_create("reply");

	tcase_add_loop_test(tc, test_reply_row, 0, N(rows));
	tcase_add_test(tc, test_truncated_empty);
	tcase_add_test(tc, test_too_many_sockets);
	tcase_add_test(tc, test_binary_and_cut);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(peer_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
