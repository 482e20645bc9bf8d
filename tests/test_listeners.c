/* The listener module row by row: /proc lines and inet_diag buffers in,
 * sockets out; sockets in, scope and verdict out; then loopback, where netlink
 * and /proc must agree (issue 3). /proc rows are little-endian, as on x86. */
#include <arpa/inet.h>
#include <check.h>
#include <ifaddrs.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probes/listeners.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define V4 AF_INET
#define V6 AF_INET6
#define UNK VP_V6ONLY_UNKNOWN
#define OFF VP_V6ONLY_OFF
#define ON VP_V6ONLY_ON

#define REST " 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0"
#define REST6 " 00000000000000000000000000000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0"
#define PAD "                                                                                "
#define HEADER "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

struct proc_row {
	int family;
	const char *text;
	int n;                 /* sockets expected; then the first one's fields */
	const char *addr;
	uint16_t port;
	uint64_t inode;
	uint32_t queue;
};

static const struct proc_row proc_rows[] = {
	{ V4, "   0: 0100007F:1F90" REST, 1, "127.0.0.1", 8080, 4242, 0 },
	{ V4, HEADER "   0: 00000000:0016 00000000:0000 0A 00000000:00000005 00:00000000 00000000     0 "
	      "       0 17 1 0000000000000000 100 0 0 10 0\n", 1, "0.0.0.0", 22, 17, 5 },
	{ V4, "   1: 020012C6:2328" REST "\n", 1, "198.18.0.2", 9000, 4242, 0 },
	/* Established, time-wait: not listeners. */
	{ V4, "   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000 0 5 1", 0, NULL, 0, 0, 0 },
	{ V4, "   2: 0100007F:1F90 0100007F:D431 06 00000000:00000000 00:00000000 00000000  1000 0 5 1", 0, NULL, 0, 0, 0 },
	{ V6, "   0: 00000000000000000000000001000000:1F90" REST6, 1, "::1", 8080, 99, 3 },
	{ V6, "   0: 00000000000000000000000000000000:0050" REST6, 1, "::", 80, 99, 3 },
	{ V6, "   0: 980100FD000018000000000002000000:2328" REST6, 1, "fd00:198:18::2", 9000, 99, 3 },
	{ V6, "   0: 0000000000000000FFFF00000100007F:1F90" REST6, 1, "::ffff:127.0.0.1", 8080, 99, 3 },
	/* Malformed: each is skipped, the parser goes on. */
	{ V4, HEADER, 0, NULL, 0, 0, 0 },
	{ V4, "", 0, NULL, 0, 0, 0 },
	{ V4, "\n\n\n", 0, NULL, 0, 0, 0 },
	{ V4, "   0: 0100007G:1F90" REST, 0, NULL, 0, 0, 0 },
	{ V4, "   0: 0100007F:1F900" REST, 0, NULL, 0, 0, 0 },
	{ V4, "   0: 0100007F-1F90" REST, 0, NULL, 0, 0, 0 },
	{ V4, "   0 0100007F:1F90" REST, 0, NULL, 0, 0, 0 },
	{ V4, "   x: 0100007F:1F90" REST, 0, NULL, 0, 0, 0 },
	{ V4, "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000", 0, NULL, 0, 0, 0 },
	{ V4, "   0: 0100007F:1F90 00000000:0000 0A 0000000000000000 00:00000000 0 0 0 1 1", 0, NULL, 0, 0, 0 },
	{ V4, "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 0 0 0 12a 1", 0, NULL, 0, 0, 0 },
	{ V4, "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 0 0 0 99999999999999999999 1", 0, NULL, 0, 0, 0 },
	{ V4, "   0: 0100007F:1F90 00000000:0000 A 00000000:00000000 00:00000000 0 0 0 1 1", 0, NULL, 0, 0, 0 },
	/* A tcp6 line given as tcp, and the other way round. */
	{ V4, "   0: 00000000000000000000000001000000:1F90" REST6, 0, NULL, 0, 0, 0 },
	{ V6, "   0: 0100007F:1F90" REST, 0, NULL, 0, 0, 0 },
	/* Good lines around bad ones, and no newline at the end. */
	{ V4, HEADER "garbage\n   0: 0100007F:1F90" REST "\n\x01\x02\n   1: 00000000:0016" REST, 2,
	  "127.0.0.1", 8080, 4242, 0 },
	/* Over VP_LISTEN_PROC_LINE_MAX: skipped whole, the next line is read. */
	{ V4, "   0: 0100007F:1F90" REST PAD PAD PAD PAD PAD PAD PAD "\n   1: 00000000:0016" REST, 1,
	  "0.0.0.0", 22, 4242, 0 },
	/* Tabs are whitespace too. */
	{ V4, "\t0:\t0100007F:1F90\t00000000:0000\t0A\t00000000:00000000\t00:00000000\t0\t0\t0\t7", 1,
	  "127.0.0.1", 8080, 7, 0 },
};

START_TEST(test_proc_row)
{
	const struct proc_row *row = &proc_rows[_i];
	struct vp_listen_table t;
	char a[INET6_ADDRSTRLEN];
	int r;

	vp_listen_table_init(&t);
	r = vp_listen_parse_proc(&t, row->family, row->text, strlen(row->text));
	ck_assert_int_eq(r, row->n);
	ck_assert_uint_eq(t.n, (size_t)row->n);
	if (row->n > 0) {
		const struct vp_listen_sock *s = &t.socks[0];
		vp_listen_addr_text(s, a, sizeof(a));
		ck_assert_str_eq(a, row->addr);
		ck_assert(s->family == row->family && s->port == row->port && s->inode == row->inode);
		ck_assert(s->queue_cur == row->queue && !s->queue_max_known && s->v6only == UNK);
	}
	vp_listen_table_done(&t);
}
END_TEST

/* A megabyte without a newline is one skipped line; the table stops at
 * its maximum and says so. */
START_TEST(test_proc_bounds)
{
	static const char line[] = "   0: 0100007F:1F90" REST "\n";
	size_t ll = strlen(line), big = 1 << 20, many = (size_t)VP_LISTEN_SOCKETS_MAX + 10;
	char *buf = malloc(many * ll > big ? many * ll : big);
	struct vp_listen_table t;

	ck_assert_ptr_nonnull(buf);
	vp_listen_table_init(&t);
	memset(buf, '0', big);
	ck_assert_int_eq(vp_listen_parse_proc(&t, V4, buf, big), 0);
	ck_assert(!t.truncated);
	for (size_t i = 0; i < many; i++)
		memcpy(buf + i * ll, line, ll);
	ck_assert_int_eq(vp_listen_parse_proc(&t, V4, buf, many * ll), VP_LISTEN_SOCKETS_MAX);
	ck_assert_uint_eq(t.n, VP_LISTEN_SOCKETS_MAX);
	ck_assert(t.truncated);
	vp_listen_table_done(&t);
	free(buf);
}
END_TEST

/* One message: 'cut' bytes off its payload, nlmsg_len 'lie' bytes beyond
 * the buffer, rta_len 'rta_lie' bytes beyond; v6only -1: no attribute. */
struct msg {
	uint16_t type;         /* 0: SOCK_DIAG_BY_FAMILY */
	int family, state;
	const char *addr;
	uint16_t port;
	uint32_t inode, rq, wq;
	int v6only, error, cut, lie, rta_lie;
};

struct diag_row {
	const char *name;
	struct msg m[3];
	size_t n_msgs, chop;   /* chop: bytes cut from the end of the buffer */
	int ret, n;            /* the first socket is m[0], but for v6only: */
	enum vp_v6only v6only;
};

#define L4(a, p) { 0, V4, 10, a, p, 77, 3, 128, -1, 0, 0, 0, 0 }
#define L6(a, p, v6) { 0, V6, 10, a, p, 78, 0, 4096, v6, 0, 0, 0, 0 }
#define DONE { NLMSG_DONE, 0, 0, NULL, 0, 0, 0, 0, -1, 0, 0, 0, 0 }
#define ERR(e) { NLMSG_ERROR, 0, 0, NULL, 0, 0, 0, 0, -1, e, 0, 0, 0 }

static const struct diag_row diag_rows[] = {
	{ "v4 listener, done", { L4("127.0.0.1", 8080), DONE }, 2, 0, 1, 1, UNK },
	{ "v6 :: v6only on", { L6("::", 80, 1) }, 1, 0, 0, 1, ON },
	{ "v6 :: v6only off", { L6("::", 80, 0) }, 1, 0, 0, 1, OFF },
	{ "v6 ::1 no attribute", { L6("::1", 5432, -1) }, 1, 0, 0, 1, UNK },
	{ "two, no done", { L4("0.0.0.0", 22), L6("fd00:198:18::2", 9000, 1) }, 2, 0, 0, 2, UNK },
	{ "established skipped", { { 0, V4, 1, "127.0.0.1", 1, 1, 0, 0, -1, 0, 0, 0, 0 } }, 1, 0, 0, 0, UNK },
	{ "AF_UNIX skipped", { { 0, AF_UNIX, 10, "0.0.0.0", 1, 1, 0, 0, -1, 0, 0, 0, 0 } }, 1, 0, 0, 0, UNK },
	{ "error EPERM", { ERR(-EPERM) }, 1, 0, -EPERM, 0, UNK },
	{ "listener then error", { L4("127.0.0.1", 1), ERR(-ENOENT) }, 2, 0, -ENOENT, 1, UNK },
	{ "ack is done", { ERR(0) }, 1, 0, 1, 0, UNK },
	{ "error too short", { { NLMSG_ERROR, 0, 0, NULL, 0, 0, 0, 0, -1, -EPERM, 8, 0, 0 } }, 1, 0, -EBADMSG, 0, UNK },
	{ "nlmsg_len beyond buffer", { { 0, V4, 10, "127.0.0.1", 1, 1, 0, 0, -1, 0, 0, 100, 0 } }, 1, 0, -EBADMSG, 0, UNK },
	{ "buffer cut mid-message", { L4("127.0.0.1", 8080) }, 1, 20, -EBADMSG, 0, UNK },
	{ "buffer cut mid-header", { L4("127.0.0.1", 8080), DONE }, 2, 10, -EBADMSG, 1, UNK },
	{ "payload too short", { { 0, V4, 10, "127.0.0.1", 1, 1, 0, 0, -1, 0, 60, 0, 0 }, DONE }, 2, 0, 1, 0, UNK },
	{ "attribute overruns", { { 0, V6, 10, "::", 80, 78, 0, 4096, 1, 0, 0, 0, 50 } }, 1, 0, 0, 1, UNK },
	{ "empty", { { 0 } }, 0, 0, 0, 0, UNK },
};

static size_t put_msg(uint8_t *buf, const struct msg *m)
{
	struct nlmsghdr h = { .nlmsg_type = m->type ? m->type : SOCK_DIAG_BY_FAMILY };
	size_t len = 0;

	if (m->type == NLMSG_ERROR) {
		struct nlmsgerr e = { .error = m->error };
		memcpy(buf + NLMSG_HDRLEN, &e, sizeof(e));
		len = sizeof(e);
	} else if (m->type == 0) {
		struct inet_diag_msg d = { .idiag_family = (uint8_t)m->family, .idiag_state = (uint8_t)m->state,
		                           .idiag_rqueue = m->rq, .idiag_wqueue = m->wq, .idiag_inode = m->inode };
		d.id.idiag_sport = htons(m->port);
		inet_pton(m->family == V6 ? V6 : V4, m->addr, d.id.idiag_src);
		memcpy(buf + NLMSG_HDRLEN, &d, sizeof(d));
		len = NLMSG_ALIGN(sizeof(d));
		if (m->v6only >= 0) {
			struct rtattr a = { .rta_len = (unsigned short)(RTA_LENGTH(1) + m->rta_lie),
			                    .rta_type = INET_DIAG_SKV6ONLY };
			memcpy(buf + NLMSG_HDRLEN + len, &a, sizeof(a));
			buf[NLMSG_HDRLEN + len + RTA_LENGTH(0)] = (uint8_t)m->v6only;
			len += RTA_ALIGN(RTA_LENGTH(1));
		}
	}
	len -= (size_t)m->cut;
	h.nlmsg_len = (uint32_t)(NLMSG_LENGTH(len) + (size_t)m->lie);
	memcpy(buf, &h, sizeof(h));
	return NLMSG_ALIGN(NLMSG_LENGTH(len));
}

static size_t build_diag(const struct diag_row *row, uint8_t *buf)
{
	size_t len = 0;

	for (size_t i = 0; i < row->n_msgs; i++)
		len += put_msg(buf + len, &row->m[i]);
	return len - row->chop;
}

START_TEST(test_diag_row)
{
	const struct diag_row *row = &diag_rows[_i];
	_Alignas(4) uint8_t buf[4096] = { 0 };
	struct vp_listen_table t;
	char a[INET6_ADDRSTRLEN];
	size_t len = build_diag(row, buf);

	vp_listen_table_init(&t);
	ck_assert_msg(vp_listen_parse_diag(&t, buf, len) == row->ret, "%s", row->name);
	ck_assert_msg(t.n == (size_t)row->n, "%s: %zu sockets", row->name, t.n);
	if (row->n > 0) {
		const struct vp_listen_sock *s = &t.socks[0];
		const struct msg *m = &row->m[0];
		vp_listen_addr_text(s, a, sizeof(a));
		ck_assert_str_eq(a, m->addr);
		ck_assert(s->port == m->port && s->inode == m->inode && s->queue_max_known);
		ck_assert(s->queue_cur == m->rq && s->queue_max == m->wq);
		ck_assert_msg(s->v6only == row->v6only, "%s: v6only %d", row->name, s->v6only);
	}
	vp_listen_table_done(&t);
}
END_TEST

/* Every prefix of a good buffer: no crash, no read past the end (ASan). */
START_TEST(test_diag_prefixes)
{
	const struct diag_row *row = &diag_rows[4];
	_Alignas(4) uint8_t buf[4096] = { 0 }, first[4096];
	size_t full = build_diag(row, buf), half = put_msg(first, &row->m[0]);

	for (size_t len = 0; len <= full; len++) {
		struct vp_listen_table t;
		uint8_t *copy = malloc(len ? len : 1);
		int r;

		vp_listen_table_init(&t);
		memcpy(copy, buf, len);
		r = vp_listen_parse_diag(&t, copy, len);
		ck_assert_msg(r == 0 || r == -EBADMSG, "len %zu: %d", len, r);
		ck_assert_int_eq(r == 0, len == 0 || len == half || len == full);
		free(copy);
		vp_listen_table_done(&t);
	}
}
END_TEST

struct spec {
	const char *addr;      /* NULL ends the list */
	enum vp_v6only v6only;
	int pid;
	uint16_t port;         /* 0: 8080 */
};

#define S(a, v) { a, v, 0, 0 }
#define SP(a, v, pid) { a, v, pid, 0 }
#define SPORT(a, v, port) { a, v, 0, port }

static void make_table(struct vp_listen_table *t, const struct spec *sp)
{
	vp_listen_table_init(t);
	t->socks = calloc(8, sizeof(*t->socks));
	ck_assert_ptr_nonnull(t->socks);
	for (; sp->addr && t->n < 8; sp++) {
		struct vp_listen_sock *s = &t->socks[t->n++];
		s->family = strchr(sp->addr, ':') ? V6 : V4;
		ck_assert_int_eq(inet_pton(s->family, sp->addr, &s->addr), 1);
		s->port = sp->port ? sp->port : 8080;
		s->v6only = s->family == V6 ? sp->v6only : UNK;
		s->pid = sp->pid;
		if (sp->pid)
			snprintf(s->comm, sizeof(s->comm), "python3");
		s->queue_max = 128;
		s->queue_max_known = true;
	}
	t->cap = 8;
	vp_listen_table_sort(t);
}

struct scope_row {
	struct spec socks[5];    /* ends with a NULL address */
	const char *scope;
};

static const struct scope_row scope_rows[] = {
	{ { S(NULL, UNK) }, "not_listening" },
	{ { S("0.0.0.0", UNK) }, "all_interfaces" },
	{ { S("::", OFF) }, "all_interfaces" },
	{ { S("::", UNK) }, "all_interfaces" },          /* /proc: the Linux default */
	{ { S("::", ON) }, "specific_address" },         /* takes no IPv4 */
	{ { S("::", ON), S("0.0.0.0", UNK) }, "all_interfaces" },
	{ { S("::ffff:0.0.0.0", ON) }, "all_interfaces" },
	{ { S("127.0.0.1", UNK) }, "loopback_only" },
	{ { S("127.0.0.53", UNK) }, "loopback_only" },
	{ { S("::1", OFF) }, "loopback_only" },
	{ { S("127.0.0.1", UNK), S("::1", ON) }, "loopback_only" },
	{ { S("::ffff:127.0.0.1", OFF) }, "loopback_only" },
	{ { S("198.18.0.2", UNK) }, "specific_address" },
	{ { S("fd00:198:18::2", ON) }, "specific_address" },
	{ { S("127.0.0.1", UNK), S("198.18.0.2", UNK) }, "specific_address" },
	{ { S("::1", ON), S("::", ON) }, "specific_address" },
	{ { S("127.0.0.1", UNK), S("::", OFF) }, "all_interfaces" },
	{ { S("127.0.0.1", UNK), S("::1", ON), S("198.18.0.2", UNK), S("0.0.0.0", UNK) }, "all_interfaces" },
	{ { SPORT("127.0.0.1", UNK, 9090) }, "not_listening" },   /* another port */
};

START_TEST(test_scope_row)
{
	struct vp_listen_table t;
	struct vp_listen_port p;

	make_table(&t, scope_rows[_i].socks);
	vp_listen_port_get(&t, 8080, &p);
	ck_assert_str_eq(vp_listen_scope_name(p.scope), scope_rows[_i].scope);
	ck_assert_int_eq(vp_listen_scope_of(p.socks, p.n), p.scope);
	vp_listen_table_done(&t);
}
END_TEST

struct refine_row {
	struct spec socks[3];
	const char *probed;
	enum vp_verdict before;
	int ret;
	enum vp_verdict verdict;
	const char *reason;
	const char *detail_has;  /* NULL: the detail is left alone */
	const char *hint_has;
};

#define LB VP_VERDICT_LOCALHOST_ONLY
#define RF VP_VERDICT_REFUSED
static const struct refine_row refine_rows[] = {
	{ { SP("127.0.0.1", UNK, 4242) }, "198.18.0.2", RF, 1, LB, "loopback_bind",
	  "port 8080 listens on 127.0.0.1 only (pid 4242 python3); bind it to 0.0.0.0 or to the VM's "
	  "internal address", "through the Serverless VPC Access connector" },
	{ { S("127.0.0.1", UNK), S("::1", ON) }, "198.18.0.2", RF, 1, LB, "loopback_bind",
	  "port 8080 listens on 127.0.0.1 and ::1 only; bind it", "Bind it to 0.0.0.0 (or to 198.18.0.2)" },
	{ { SP("::1", ON, 7) }, "fd00:198:18::2", RF, 1, LB, "loopback_bind", "::1 only (pid 7 python3)",
	  "sport = :8080" },
	{ { S("127.0.0.1", UNK) }, "::ffff:198.18.0.2", RF, 1, LB, "loopback_bind", "127.0.0.1 only", NULL },
	{ { SP("198.18.0.3", UNK, 9) }, "198.18.0.2", RF, 1, RF, "bound_other_address",
	  "port 8080 listens on 198.18.0.3 only (pid 9 python3), not on 198.18.0.2", "another address" },
	{ { S("127.0.0.1", UNK), S("198.18.0.3", UNK) }, "198.18.0.2", RF, 1, RF, "bound_other_address",
	  "listens on 127.0.0.1 and 198.18.0.3 only", NULL },
	{ { S("::", ON) }, "198.18.0.2", RF, 1, RF, "bound_other_address", "IPV6_V6ONLY", NULL },
	/* A loopback address probed and refused: the listener is on the other one. */
	{ { S("::1", ON) }, "127.0.0.1", RF, 1, RF, "bound_other_address", "::1 only, not on 127.0.0.1", NULL },
	/* A listener takes the probed address: the reset came from elsewhere. */
	{ { S("::", ON) }, "fd00:198:18::2", RF, 0, RF, "rst_to_syn", NULL, NULL },
	{ { S("0.0.0.0", UNK) }, "198.18.0.2", RF, 0, RF, "rst_to_syn", NULL, NULL },
	{ { S("::", OFF) }, "198.18.0.2", RF, 0, RF, "rst_to_syn", NULL, NULL },
	{ { S("::", UNK) }, "198.18.0.2", RF, 0, RF, "rst_to_syn", NULL, NULL },
	{ { S("198.18.0.2", UNK), S("127.0.0.1", UNK) }, "198.18.0.2", RF, 0, RF, "rst_to_syn", NULL, NULL },
	{ { S("::ffff:198.18.0.2", OFF) }, "198.18.0.2", RF, 0, RF, "rst_to_syn", NULL, NULL },
	/* Nothing on the port: plain refused. */
	{ { SPORT("127.0.0.1", UNK, 9090) }, "198.18.0.2", RF, 0, RF, "rst_to_syn", NULL, NULL },
	{ { S(NULL, UNK) }, "198.18.0.2", RF, 0, RF, "rst_to_syn", NULL, NULL },
	/* Only a refusal is refined. */
	{ { S("127.0.0.1", UNK) }, "198.18.0.2", VP_VERDICT_TIMEOUT, 0, VP_VERDICT_TIMEOUT, "rst_to_syn", NULL, NULL },
};

static void sockaddr_of(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *in = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	ss->ss_family = strchr(text, ':') ? AF_INET6 : AF_INET;
	ck_assert_int_eq(inet_pton(ss->ss_family, text, ss->ss_family == AF_INET6 ? (void *)&in6->sin6_addr
	                                                                          : (void *)&in->sin_addr), 1);
}

START_TEST(test_refine_row)
{
	const struct refine_row *row = &refine_rows[_i];
	struct vp_verdict_out out = { .verdict = row->before, .reason = VP_REASON_RST_TO_SYN,
	                              .err = ECONNREFUSED, .detail = "before", .hint = "before" };
	struct sockaddr_storage ss;
	struct vp_listen_table t;

	make_table(&t, row->socks);
	sockaddr_of(row->probed, &ss);
	ck_assert_int_eq(vp_listen_refine_refused(&t, (struct sockaddr *)&ss, 8080, &out), row->ret);
	ck_assert_str_eq(vp_verdict_name(out.verdict), vp_verdict_name(row->verdict));
	ck_assert_str_eq(vp_reason_name(out.reason), row->reason);
	ck_assert_int_eq(out.err, ECONNREFUSED);
	if (row->detail_has)
		ck_assert_msg(strstr(out.detail, row->detail_has), "detail '%s'", out.detail);
	else
		ck_assert_str_eq(out.detail, "before");
	if (row->hint_has)
		ck_assert_msg(strstr(out.hint, row->hint_has), "hint '%s'", out.hint);
	vp_listen_table_done(&t);
}
END_TEST

/* Process names as /proc/PID/comm gives them (any byte but NUL, cut by the
 * kernel at 15 bytes), cleaned for JSON, the page and terminals: valid
 * UTF-8 kept, '?' for each byte of an invalid sequence and for each
 * control character. */
struct comm_row {
	const char *in, *out;
};

static const struct comm_row comm_rows[] = {
	{ "postgres", "postgres" },
	{ "", "" },
	{ "caf\xc3\xa9-srv", "caf\xc3\xa9-srv" },                       /* 2 bytes kept */
	{ "\xe2\x9c\x93ok", "\xe2\x9c\x93ok" },                           /* 3 bytes kept */
	{ "\xf0\x9f\x90\x98" "db", "\xf0\x9f\x90\x98" "db" },             /* 4 bytes kept */
	{ "nb\xc2\xa0sp", "nb\xc2\xa0sp" },                               /* U+00A0: no control */
	{ "bad\xffname", "bad?name" },
	{ "\xff\xfesrv", "??srv" },
	{ "\x80x\xbf", "?x?" },                                           /* lone continuations */
	{ "\xc3(", "?(" },                                               /* lead, no continuation */
	/* A character cut at the end: the kernel cuts a name at 15 bytes,
	 * whatever the characters. */
	{ "caf\xc3", "caf?" },
	{ "ab\xe2\x9c", "ab??" },
	{ "ab\xf0\x9f\x90", "ab???" },
	{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xa7\xe3\x81",
	  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xa7??" },
	/* Overlong forms of '/' and of NUL, a surrogate, past U+10FFFF. */
	{ "\xc0\xaf", "??" },
	{ "\xc1\xbf", "??" },
	{ "\xe0\x80\xaf", "???" },
	{ "\xf0\x80\x80\xaf", "????" },
	{ "\xc0\x80x", "??x" },
	{ "\xed\xa0\x80", "???" },
	{ "\xf4\x90\x80\x80", "????" },
	{ "\xf8\x88\x80\x80\x80", "?????" },
	/* Control characters: C0, DEL, C1 (CSI as U+009B is one '?'). */
	{ "a\nb\tc\x1b[2J", "a?b?c?[2J" },
	{ "x\x7fy", "x?y" },
	{ "c1\xc2\x9b" "2J", "c1?2J" },
};

START_TEST(test_comm_row)
{
	const struct comm_row *row = &comm_rows[_i];
	char comm[VP_LISTEN_COMM_MAX];

	ck_assert_uint_lt(strlen(row->in), sizeof(comm));
	snprintf(comm, sizeof(comm), "%s", row->in);
	vp_listen_comm_clean(comm);
	ck_assert_msg(strcmp(comm, row->out) == 0, "row %d: '%s', expected '%s'", _i, comm, row->out);
}
END_TEST

struct local_row {
	const char *addr;
	bool with_list, local;
};

static const struct local_row local_rows[] = {
	{ "127.0.0.1", true, true }, { "127.0.0.2", true, true }, { "127.0.0.2", false, true },
	{ "::1", false, true }, { "198.18.0.2", true, true }, { "198.18.0.2", false, false },
	{ "198.18.0.3", true, false }, { "fd00:198:18::2", true, true }, { "fd00:198:18::3", true, false },
	{ "::ffff:198.18.0.2", true, true }, { "0.0.0.0", true, false }, { "::", true, false },
};

START_TEST(test_local_row)
{
	/* lo's address, one without an address, an AF_PACKET one, two more. */
	struct sockaddr_storage ss, a[5] = { [2].ss_family = AF_PACKET };
	static const char *const addrs[5] = { "127.0.0.1", NULL, NULL, "198.18.0.2", "fd00:198:18::2" };
	struct ifaddrs ifa[5] = { { 0 } };

	for (int i = 0; i < 5; i++) {
		ifa[i].ifa_next = i < 4 ? &ifa[i + 1] : NULL;
		ifa[i].ifa_addr = i == 1 ? NULL : (struct sockaddr *)&a[i];
		if (addrs[i])
			sockaddr_of(addrs[i], &a[i]);
	}
	sockaddr_of(local_rows[_i].addr, &ss);
	ck_assert_msg(vp_addr_is_local_in((struct sockaddr *)&ss, local_rows[_i].with_list ? ifa : NULL) ==
	              local_rows[_i].local, "%s", local_rows[_i].addr);
}
END_TEST

/* The names, and vp_addr_is_local() on this host. */
START_TEST(test_names)
{
	struct sockaddr_storage ss;

	ck_assert_str_eq(vp_reason_name(VP_REASON_LOOPBACK_BIND), "loopback_bind");
	ck_assert_str_eq(vp_reason_name(VP_REASON_BOUND_OTHER_ADDRESS), "bound_other_address");
	ck_assert_str_eq(vp_listen_scope_name(VP_SCOPE_MAX), "invalid");
	ck_assert_str_eq(vp_listen_source_name(VP_LISTEN_SOURCE_PROC), "proc");
	sockaddr_of("127.0.0.1", &ss);
	ck_assert(vp_addr_is_local((struct sockaddr *)&ss));
	sockaddr_of("198.19.255.254", &ss);   /* in the test range, on no interface here */
	ck_assert(!vp_addr_is_local((struct sockaddr *)&ss));
}
END_TEST

/* The cached list (vp_local_addrs_has): loopback without a reading, one
 * getifaddrs() per VP_LOCAL_ADDRS_TTL_MS of the caller's clock however many
 * addresses are asked about, and the same answers as vp_addr_is_local(). */
START_TEST(test_local_addrs_cache)
{
	struct vp_local_addrs c;
	struct sockaddr_storage ss, mine = { 0 };
	struct ifaddrs *list = NULL, *i;
	const uint64_t t0 = 5000;

	vp_local_addrs_init(&c);
	sockaddr_of("127.0.0.2", &ss);
	ck_assert(vp_local_addrs_has(&c, (struct sockaddr *)&ss, t0));
	sockaddr_of("::1", &ss);
	ck_assert(vp_local_addrs_has(&c, (struct sockaddr *)&ss, t0));
	ck_assert_uint_eq(c.reads, 0);

	sockaddr_of("198.19.255.254", &ss);   /* in the test range, on no interface here */
	for (uint64_t k = 0; k < 1000; k++)
		ck_assert(!vp_local_addrs_has(&c, (struct sockaddr *)&ss, t0 + k));
	ck_assert_uint_eq(c.reads, 1);
	ck_assert(!vp_local_addrs_has(&c, (struct sockaddr *)&ss, t0 + VP_LOCAL_ADDRS_TTL_MS));
	ck_assert_uint_eq(c.reads, 1);
	ck_assert(!vp_local_addrs_has(&c, (struct sockaddr *)&ss, t0 + VP_LOCAL_ADDRS_TTL_MS + 1));
	ck_assert_uint_eq(c.reads, 2);

	/* An interface address of this host that is not loopback, when there is one. */
	ck_assert_int_eq(getifaddrs(&list), 0);
	for (i = list; i; i = i->ifa_next) {
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr != htonl(INADDR_LOOPBACK)) {
			memcpy(&mine, i->ifa_addr, sizeof(struct sockaddr_in));
			break;
		}
	}
	freeifaddrs(list);
	if (mine.ss_family == AF_INET) {
		ck_assert(vp_addr_is_local((struct sockaddr *)&mine));
		ck_assert(vp_local_addrs_has(&c, (struct sockaddr *)&mine, t0 + VP_LOCAL_ADDRS_TTL_MS + 2));
		ck_assert_uint_eq(c.reads, 2);
	}
	vp_local_addrs_done(&c);
	ck_assert_ptr_null(c.list);
	ck_assert_uint_eq(c.reads, 0);
}
END_TEST

/* A listener on ADDR:port (0: any), with 'backlog'; returns the fd or -1. */
static int listen_on(int family, const char *addr, uint16_t *port, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1, fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sockaddr_of(addr, &ss);
	((struct sockaddr_in *)&ss)->sin_port = htons(*port);   /* same offset in sockaddr_in6 */
	if (fd < 0)
		return -1;
	if (family == V6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, family == V6 ? sizeof(struct sockaddr_in6)
	                                                  : sizeof(struct sockaddr_in)) < 0 ||
	    listen(fd, backlog) < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* Our sockets on 'port', as one reader saw them; 'ref' is the other
 * reader's view (NULL for the first): same addresses, inodes and queues. */
static void check_live_port(const struct vp_listen_table *t, uint16_t port, size_t n_socks,
                            bool netlink, const struct vp_listen_port *ref, struct vp_listen_port *ret)
{
	struct vp_listen_port p;

	vp_listen_port_get(t, port, &p);
	ck_assert_uint_eq(p.n, n_socks);
	ck_assert_int_eq(p.scope, VP_SCOPE_LOOPBACK_ONLY);
	for (size_t i = 0; i < p.n; i++) {
		const struct vp_listen_sock *s = &p.socks[i];
		ck_assert_int_eq(s->pid, getpid());
		ck_assert_str_eq(s->comm, "test_listeners");
		ck_assert(s->inode != 0 && s->family == (i == 0 ? V4 : V6));
		ck_assert_int_eq(s->queue_max_known, netlink);
		ck_assert_uint_eq(s->queue_max, !netlink ? 0 : s->family == V4 ? 7 : 13);
		ck_assert_int_eq(s->v6only, s->family == V4 ? UNK : netlink ? ON : UNK);
		if (ref) {
			ck_assert(!memcmp(&s->addr, &ref->socks[i].addr, sizeof(s->addr)));
			ck_assert_uint_eq(s->inode, ref->socks[i].inode);
			ck_assert_uint_eq(s->queue_cur, ref->socks[i].queue_cur);
		}
	}
	*ret = p;
}

START_TEST(test_live_loopback)
{
	struct vp_listen_table nl, pr;
	struct vp_listen_port a, b;
	uint16_t port = 0;
	int fd4 = listen_on(V4, "127.0.0.1", &port, 7);
	/* ::1 on the same port, unless another socket holds it or IPv6 is off. */
	int fd6 = fd4 < 0 ? -1 : listen_on(V6, "::1", &port, 13);

	ck_assert_int_ge(fd4, 0);
	vp_listen_table_init(&nl);
	vp_listen_table_init(&pr);
	ck_assert_int_eq(vp_listen_read(&nl, VP_LISTEN_SOURCE_NETLINK), 0);
	ck_assert_int_eq(vp_listen_read(&pr, VP_LISTEN_SOURCE_PROC), 0);
	ck_assert(nl.source == VP_LISTEN_SOURCE_NETLINK && pr.source == VP_LISTEN_SOURCE_PROC);
	check_live_port(&nl, port, fd6 >= 0 ? 2 : 1, true, NULL, &a);
	check_live_port(&pr, port, fd6 >= 0 ? 2 : 1, false, &a, &b);
	vp_listen_table_done(&nl);
	vp_listen_table_done(&pr);
	close(fd4);
	if (fd6 >= 0)
		close(fd6);
}
END_TEST

/* listen(1) and connections never accepted: one waiting fills the queue
 * (the kernel takes max + 1 before it drops SYNs), a finding of its own. */
START_TEST(test_live_overflow)
{
	struct vp_listen_table t;
	struct vp_listen_port p;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint16_t port = 0;
	int lfd = listen_on(V4, "127.0.0.1", &port, 1), c[3];

	ck_assert_int_ge(lfd, 0);
	sin.sin_port = htons(port);
	for (int i = 0; i < 3; i++) {
		c[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(c[i], 0);
		ck_assert(connect(c[i], (struct sockaddr *)&sin, sizeof(sin)) == 0 || errno == EINPROGRESS);
	}
	/* Readiness: the listening socket is readable once a connection waits. */
	ck_assert_int_eq(poll(&(struct pollfd){ .fd = lfd, .events = POLLIN }, 1, 5000), 1);
	vp_listen_table_init(&t);
	ck_assert_int_eq(vp_listen_read(&t, VP_LISTEN_SOURCE_NETLINK), 0);
	vp_listen_port_get(&t, port, &p);
	ck_assert(p.overflowing);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_uint_eq(p.socks[0].queue_max, 1);
	ck_assert_uint_ge(p.socks[0].queue_cur, 1);
	/* /proc shows the queue but not the maximum: no finding from it. */
	ck_assert_int_eq(vp_listen_read(&t, VP_LISTEN_SOURCE_PROC), 0);
	vp_listen_port_get(&t, port, &p);
	ck_assert(!p.overflowing);
	ck_assert_uint_ge(p.socks[0].queue_cur, 1);
	vp_listen_table_done(&t);
	for (int i = 0; i < 3; i++)
		close(c[i]);
	close(lfd);
}
END_TEST

static Suite *listeners_suite(void)
{
	Suite *s = suite_create("listeners");
	TCase *tc = tcase_create("parse");
	TCase *tv = tcase_create("verdict");
	TCase *tl = tcase_create("live");

	tcase_add_loop_test(tc, test_proc_row, 0, N(proc_rows));
	tcase_add_test(tc, test_proc_bounds);
	tcase_add_loop_test(tc, test_diag_row, 0, N(diag_rows));
	tcase_add_test(tc, test_diag_prefixes);
	tcase_add_loop_test(tc, test_comm_row, 0, N(comm_rows));
	suite_add_tcase(s, tc);
	tcase_add_loop_test(tv, test_scope_row, 0, N(scope_rows));
	tcase_add_loop_test(tv, test_refine_row, 0, N(refine_rows));
	tcase_add_loop_test(tv, test_local_row, 0, N(local_rows));
	tcase_add_test(tv, test_names);
	tcase_add_test(tv, test_local_addrs_cache);
	suite_add_tcase(s, tv);
	tcase_add_test(tl, test_live_loopback);
	tcase_add_test(tl, test_live_overflow);
	suite_add_tcase(s, tl);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(listeners_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
