/* The connect classifier, row by row: what the kernel said in, verdict out. */
#include <check.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "probes/classify.h"

struct row {
	enum vp_connect_event event;
	int err;
	int icmp_family;
	uint8_t icmp_type, icmp_code;
	enum vp_verdict verdict;
	const char *reason;
	const char *errno_name;   /* NULL: the record's errno is null */
	const char *detail_has;   /* a substring of the detail */
	const char *hint_has;     /* a substring of the hint, NULL for none expected */
};

#define V4 AF_INET
#define V6 AF_INET6

static const struct row rows[] = {
	/* The handshake completed. */
	{ VP_CONNECT_DONE, 0, 0, 0, 0, VP_VERDICT_OK, "connected", NULL, "handshake", NULL },
	/* RST to the SYN, no ICMP: nothing listens. */
	{ VP_CONNECT_FAILED, ECONNREFUSED, 0, 0, 0, VP_VERDICT_REFUSED, "rst_to_syn", "ECONNREFUSED",
	  "reset", "127.0.0.1" },
	/* Reset after the handshake, before the connect callback ran. */
	{ VP_CONNECT_FAILED, ECONNRESET, 0, 0, 0, VP_VERDICT_RESET, "reset_before_reply",
	  "ECONNRESET", "accepted the connection, then reset", "overloaded" },
	/* Our deadline, and the kernel's own SYN retry limit. */
	{ VP_CONNECT_DEADLINE, ETIMEDOUT, 0, 0, 0, VP_VERDICT_TIMEOUT, "syn_no_answer", "ETIMEDOUT",
	  "within 1500 ms", "connector's /28" },
	{ VP_CONNECT_FAILED, ETIMEDOUT, 0, 0, 0, VP_VERDICT_TIMEOUT, "syn_no_answer", "ETIMEDOUT",
	  "no answer to SYN", "firewall" },
	/* ICMPv4 destination unreachable, code by code. */
	{ VP_CONNECT_FAILED, EHOSTUNREACH, V4, ICMP_DEST_UNREACH, ICMP_PKT_FILTERED,
	  VP_VERDICT_UNREACHABLE, "admin_prohibited", "EHOSTUNREACH", "type 3 code 13", "REJECT" },
	{ VP_CONNECT_FAILED, EHOSTUNREACH, V4, ICMP_DEST_UNREACH, ICMP_HOST_ANO,
	  VP_VERDICT_UNREACHABLE, "admin_prohibited", "EHOSTUNREACH", "code 10", "REJECT" },
	{ VP_CONNECT_FAILED, ENETUNREACH, V4, ICMP_DEST_UNREACH, ICMP_NET_ANO,
	  VP_VERDICT_UNREACHABLE, "admin_prohibited", "ENETUNREACH", "code 9", NULL },
	{ VP_CONNECT_FAILED, EHOSTUNREACH, V4, ICMP_DEST_UNREACH, ICMP_HOST_UNREACH,
	  VP_VERDICT_UNREACHABLE, "host_unreachable", "EHOSTUNREACH", "type 3 code 1", "stopped" },
	{ VP_CONNECT_FAILED, EHOSTDOWN, V4, ICMP_DEST_UNREACH, ICMP_HOST_UNKNOWN,
	  VP_VERDICT_UNREACHABLE, "host_unreachable", "EHOSTDOWN", "code 7", NULL },
	{ VP_CONNECT_FAILED, ENETUNREACH, V4, ICMP_DEST_UNREACH, ICMP_NET_UNREACH,
	  VP_VERDICT_UNREACHABLE, "net_unreachable", "ENETUNREACH", "type 3 code 0", "peering" },
	{ VP_CONNECT_FAILED, ENETUNREACH, V4, ICMP_DEST_UNREACH, ICMP_NET_UNKNOWN,
	  VP_VERDICT_UNREACHABLE, "net_unreachable", "ENETUNREACH", "code 6", NULL },
	/* iptables' default REJECT: ECONNREFUSED, but not a RST. */
	{ VP_CONNECT_FAILED, ECONNREFUSED, V4, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH,
	  VP_VERDICT_UNREACHABLE, "port_unreachable", "ECONNREFUSED", "type 3 code 3", "iptables" },
	{ VP_CONNECT_FAILED, ENOPROTOOPT, V4, ICMP_DEST_UNREACH, ICMP_PROT_UNREACH,
	  VP_VERDICT_UNREACHABLE, "protocol_unreachable", "ENOPROTOOPT", "code 2", NULL },
	{ VP_CONNECT_FAILED, EHOSTUNREACH, V4, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL,
	  VP_VERDICT_UNREACHABLE, "ttl_exceeded", "EHOSTUNREACH", "type 11", "loop" },
	/* ICMPv6 destination unreachable (RFC 4443 3.1). */
	{ VP_CONNECT_FAILED, EACCES, V6, ICMP6_DST_UNREACH, ICMP6_DST_UNREACH_ADMIN,
	  VP_VERDICT_UNREACHABLE, "admin_prohibited", "EACCES", "ICMPv6", "REJECT" },
	{ VP_CONNECT_FAILED, EACCES, V6, ICMP6_DST_UNREACH, 5, VP_VERDICT_UNREACHABLE,
	  "admin_prohibited", "EACCES", "code 5", NULL },
	{ VP_CONNECT_FAILED, EACCES, V6, ICMP6_DST_UNREACH, 6, VP_VERDICT_UNREACHABLE,
	  "admin_prohibited", "EACCES", "code 6", NULL },
	{ VP_CONNECT_FAILED, EHOSTUNREACH, V6, ICMP6_DST_UNREACH, ICMP6_DST_UNREACH_ADDR,
	  VP_VERDICT_UNREACHABLE, "host_unreachable", "EHOSTUNREACH", "type 1 code 3", NULL },
	{ VP_CONNECT_FAILED, ENETUNREACH, V6, ICMP6_DST_UNREACH, ICMP6_DST_UNREACH_NOROUTE,
	  VP_VERDICT_UNREACHABLE, "net_unreachable", "ENETUNREACH", "type 1 code 0", NULL },
	{ VP_CONNECT_FAILED, ENETUNREACH, V6, ICMP6_DST_UNREACH, ICMP6_DST_UNREACH_BEYONDSCOPE,
	  VP_VERDICT_UNREACHABLE, "net_unreachable", "ENETUNREACH", "code 2", NULL },
	{ VP_CONNECT_FAILED, ECONNREFUSED, V6, ICMP6_DST_UNREACH, ICMP6_DST_UNREACH_NOPORT,
	  VP_VERDICT_UNREACHABLE, "port_unreachable", "ECONNREFUSED", "type 1 code 4", NULL },
	{ VP_CONNECT_FAILED, EHOSTUNREACH, V6, ICMP6_TIME_EXCEEDED, 0, VP_VERDICT_UNREACHABLE,
	  "ttl_exceeded", "EHOSTUNREACH", "ICMPv6", NULL },
	/* An ICMP type we do not interpret: the errno decides. */
	{ VP_CONNECT_FAILED, EHOSTUNREACH, V4, ICMP_PARAMETERPROB, 0, VP_VERDICT_UNREACHABLE,
	  "host_unreachable", "EHOSTUNREACH", "No route to host", NULL },
	/* Failures reported later without ICMP evidence. */
	{ VP_CONNECT_FAILED, EHOSTUNREACH, 0, 0, 0, VP_VERDICT_UNREACHABLE, "host_unreachable",
	  "EHOSTUNREACH", "No route to host", NULL },
	{ VP_CONNECT_FAILED, ENETUNREACH, 0, 0, 0, VP_VERDICT_UNREACHABLE, "net_unreachable",
	  "ENETUNREACH", "Network is unreachable", NULL },
	/* connect() failed at once: the local routing table. */
	{ VP_CONNECT_SETUP_FAILED, ENETUNREACH, 0, 0, 0, VP_VERDICT_UNREACHABLE, "no_route",
	  "ENETUNREACH", "routing table", "ip route get" },
	{ VP_CONNECT_SETUP_FAILED, EHOSTUNREACH, 0, 0, 0, VP_VERDICT_UNREACHABLE, "no_route",
	  "EHOSTUNREACH", "routing table", "ip route get" },
	/* The agent's own trouble: never blamed on the target. */
	{ VP_CONNECT_SETUP_FAILED, EMFILE, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "fd_exhausted", "EMFILE",
	  "not the target's", "LimitNOFILE" },
	{ VP_CONNECT_SETUP_FAILED, ENFILE, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "fd_exhausted", "ENFILE",
	  "agent's own", "LimitNOFILE" },
	{ VP_CONNECT_SETUP_FAILED, EADDRNOTAVAIL, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "no_local_address",
	  "EADDRNOTAVAIL", "agent's own", "ip_local_port_range" },
	{ VP_CONNECT_SETUP_FAILED, EAGAIN, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "no_local_address",
	  "EAGAIN", "agent's own", "ip_local_port_range" },
	{ VP_CONNECT_SETUP_FAILED, EADDRINUSE, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "no_local_address",
	  "EADDRINUSE", "agent's own", NULL },
	{ VP_CONNECT_SETUP_FAILED, ENOBUFS, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "no_buffers", "ENOBUFS",
	  "agent's own", "memory" },
	{ VP_CONNECT_SETUP_FAILED, ENOMEM, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "no_buffers", "ENOMEM",
	  "agent's own", "memory" },
	{ VP_CONNECT_SETUP_FAILED, EPERM, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "local_policy", "EPERM",
	  "agent's own", "nft list ruleset" },
	{ VP_CONNECT_SETUP_FAILED, EACCES, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "local_policy", "EACCES",
	  "agent's own", NULL },
	{ VP_CONNECT_SETUP_FAILED, EINVAL, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "local_other", "EINVAL",
	  "agent's own", "not judged" },
	{ VP_CONNECT_FAILED, ENOBUFS, 0, 0, 0, VP_VERDICT_LOCAL_ERROR, "no_buffers", "ENOBUFS",
	  "agent's own", NULL },
	/* A synchronous ECONNREFUSED (some kernels say it at once on loopback). */
	{ VP_CONNECT_SETUP_FAILED, ECONNREFUSED, 0, 0, 0, VP_VERDICT_REFUSED, "rst_to_syn",
	  "ECONNREFUSED", "reset", NULL },
};

START_TEST(test_row)
{
	const struct row *row = &rows[_i];
	struct vp_connect_obs obs = {
		.event = row->event, .err = row->err, .icmp_family = row->icmp_family,
		.icmp_type = row->icmp_type, .icmp_code = row->icmp_code,
		.kind = VP_KIND_TCP, .address = "198.18.0.2", .port = 5432, .timeout_ms = 1500,
		.op = row->event == VP_CONNECT_SETUP_FAILED ? "connect" : NULL,
	};
	struct vp_verdict_out out;
	const char *en;

	if (row->icmp_family)
		strcpy(obs.icmp_from, "198.18.0.2");
	vp_classify_connect(&obs, &out);
	ck_assert_msg(out.verdict == row->verdict, "row %d: verdict %s, expected %s", _i,
	              vp_verdict_name(out.verdict), vp_verdict_name(row->verdict));
	ck_assert_str_eq(vp_reason_name(out.reason), row->reason);
	en = vp_errno_name(out.err);
	if (row->errno_name)
		ck_assert_msg(en && !strcmp(en, row->errno_name), "row %d: errno %s, expected %s", _i,
		              en ? en : "(null)", row->errno_name);
	else
		ck_assert_msg(en == NULL, "row %d: errno %s, expected null", _i, en);
	ck_assert_msg(strstr(out.detail, row->detail_has), "row %d: detail '%s' lacks '%s'", _i,
	              out.detail, row->detail_has);
	if (row->verdict == VP_VERDICT_OK)
		ck_assert_str_eq(out.hint, "");
	else
		ck_assert_msg(out.hint[0], "row %d: a failure needs a hint", _i);
	if (row->hint_has)
		ck_assert_msg(strstr(out.hint, row->hint_has), "row %d: hint '%s' lacks '%s'", _i,
		              out.hint, row->hint_has);
	/* The local errors name the agent, never the target, as the cause. */
	if (row->verdict == VP_VERDICT_LOCAL_ERROR)
		ck_assert_msg(strstr(out.hint, "Nothing is known about 198.18.0.2:5432"),
		              "row %d: hint '%s'", _i, out.hint);
}
END_TEST

/* A protocol URL probed at the TCP level says so. */
START_TEST(test_tcp_level_note)
{
	struct vp_connect_obs obs = { .event = VP_CONNECT_DONE, .kind = VP_KIND_POSTGRES,
	                              .address = "::1", .port = 5432, .timeout_ms = 100 };
	struct vp_verdict_out out;

	vp_classify_connect(&obs, &out);
	ck_assert_int_eq(out.verdict, VP_VERDICT_OK);
	ck_assert_ptr_nonnull(strstr(out.detail, "postgres:// is checked at the TCP level only"));
}
END_TEST

/* Every verdict and reason has its contract name. */
START_TEST(test_names)
{
	for (int v = 0; v < VP_VERDICT_MAX; v++)
		ck_assert_str_ne(vp_verdict_name(v), "invalid");
	for (int r = 0; r < VP_REASON_MAX; r++)
		ck_assert_str_ne(vp_reason_name(r), "invalid");
	ck_assert_str_eq(vp_verdict_name(VP_VERDICT_LOCALHOST_ONLY), "localhost_only");
	ck_assert_str_eq(vp_verdict_name(VP_VERDICT_MAX), "invalid");
	ck_assert_str_eq(vp_reason_name(VP_REASON_INVALID), "invalid");
}
END_TEST

static Suite *classify_suite(void)
{
	Suite *s = suite_create("classify");
	TCase *tc = tcase_create("connect");

	tcase_add_loop_test(tc, test_row, 0, (int)(sizeof(rows) / sizeof(rows[0])));
	tcase_add_test(tc, test_tcp_level_note);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(classify_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
