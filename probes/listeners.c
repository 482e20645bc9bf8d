/* This host's listening TCP sockets (issue 3): NETLINK_SOCK_DIAG first,
 * because only inet_diag shows the maximum backlog and IPV6_V6ONLY; then
 * /proc/net/tcp{,6} when netlink is refused (some sandboxes block it). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "probes/listeners.h"
#include "probes/wire.h"

/* TCP_LISTEN of include/net/tcp_states.h, which is not a uapi header. */
#define STATE_LISTEN 10

static const char *const source_names[VP_LISTEN_SOURCE_MAX] = {
	[VP_LISTEN_SOURCE_AUTO] = "auto",
	[VP_LISTEN_SOURCE_NETLINK] = "netlink",
	[VP_LISTEN_SOURCE_PROC] = "proc",
};

const char *vp_listen_source_name(enum vp_listen_source s)
{
	return s < 0 || s >= VP_LISTEN_SOURCE_MAX ? "invalid" : source_names[s];
}

void vp_listen_table_init(struct vp_listen_table *t)
{
	memset(t, 0, sizeof(*t));
}

void vp_listen_table_done(struct vp_listen_table *t)
{
	free(t->socks);
	vp_listen_table_init(t);
}

/* A new zeroed slot, -ENOSPC past VP_LISTEN_SOCKETS_MAX (flagged), -ENOMEM. */
static int table_push(struct vp_listen_table *t, struct vp_listen_sock **ret)
{
	if (t->n == VP_LISTEN_SOCKETS_MAX) {
		t->truncated = true;
		return -ENOSPC;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct vp_listen_sock *s;

		if (cap > VP_LISTEN_SOCKETS_MAX)
			cap = VP_LISTEN_SOCKETS_MAX;
		s = realloc(t->socks, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		t->socks = s;
		t->cap = cap;
	}
	*ret = &t->socks[t->n++];
	memset(*ret, 0, sizeof(**ret));
	return 0;
}

/* ---- /proc/net/tcp{,6} ---------------------------------------------------- */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 'n' hex digits (n <= 8). */
static bool hex_u32(const char *s, size_t n, uint32_t *v)
{
	*v = 0;
	if (n == 0 || n > 8)
		return false;
	for (size_t i = 0; i < n; i++) {
		int d = hex_digit(s[i]);
		if (d < 0)
			return false;
		*v = *v << 4 | (uint32_t)d;
	}
	return true;
}

static bool dec_u64(const char *s, size_t n, uint64_t *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || *v > (UINT64_MAX - 9) / 10)
			return false;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return n > 0;
}

struct tok {
	const char *s;   /* borrowed from the line */
	size_t n;
};

static size_t tokenize(const char *line, size_t len, struct tok *tok, size_t max)
{
	size_t k = 0, i = 0;

	while (i < len && k < max) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			break;
		tok[k].s = line + i;
		while (i < len && line[i] != ' ' && line[i] != '\t')
			i++;
		tok[k].n = (size_t)(line + i - tok[k].s);
		k++;
	}
	return k;
}

/* "0100007F:1F90" or 32 hex digits ":1F90": each 32-bit word as the kernel
 * printed it with %08X, i.e. in this host's byte order. */
static bool parse_local(const struct tok *t, int family, struct vp_listen_sock *s)
{
	size_t words = family == AF_INET ? 1 : 4;
	uint32_t w, port;

	if (t->n != words * 8 + 5 || t->s[words * 8] != ':')
		return false;
	for (size_t i = 0; i < words; i++) {
		if (!hex_u32(t->s + i * 8, 8, &w))
			return false;
		if (family == AF_INET)
			s->addr.v4.s_addr = w;
		else
			memcpy(&s->addr.v6.s6_addr[i * 4], &w, sizeof(w));
	}
	if (!hex_u32(t->s + words * 8 + 1, 4, &port))
		return false;
	s->family = family;
	s->port = (uint16_t)port;
	return true;
}

/* One line: "sl: local remote st tx:rx tr:when retrnsmt uid timeout inode ...".
 * True for a well-formed LISTEN line. */
static bool parse_proc_line(const char *line, size_t len, int family, struct vp_listen_sock *s)
{
	struct tok tok[10];
	uint32_t st, rx, tx;
	uint64_t inode, sl;

	if (tokenize(line, len, tok, 10) != 10 || tok[0].n < 2 || tok[0].s[tok[0].n - 1] != ':')
		return false;
	if (!dec_u64(tok[0].s, tok[0].n - 1, &sl) || !parse_local(&tok[1], family, s))
		return false;
	if (!hex_u32(tok[3].s, tok[3].n, &st) || tok[3].n != 2 || st != STATE_LISTEN)
		return false;
	if (tok[4].n != 17 || tok[4].s[8] != ':' || !hex_u32(tok[4].s, 8, &tx) ||
	    !hex_u32(tok[4].s + 9, 8, &rx))
		return false;
	if (!dec_u64(tok[9].s, tok[9].n, &inode))
		return false;
	/* For a LISTEN socket rx_queue is sk_ack_backlog (net/ipv4/tcp_ipv4.c
	 * get_tcp4_sock); the maximum is not printed. */
	s->queue_cur = rx;
	s->inode = inode;
	s->v6only = VP_V6ONLY_UNKNOWN;
	return true;
}

int vp_listen_parse_proc(struct vp_listen_table *t, int family, const char *buf, size_t len)
{
	size_t i = 0;
	int added = 0;

	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) : len - i;
		struct vp_listen_sock s = { 0 }, *slot;

		if (n <= VP_LISTEN_PROC_LINE_MAX && parse_proc_line(buf + i, n, family, &s)) {
			int r = table_push(t, &slot);
			if (r == -ENOMEM)
				return r;
			if (r == 0) {
				*slot = s;
				added++;
			}
		}
		i += n + (nl ? 1 : 0);
	}
	return added;
}

/* Feeds whole lines of 'path' to the parser; an over-long line is dropped
 * and reading stops after VP_LISTEN_PROC_BYTES_MAX (flagged as truncated). */
static int read_proc_file(struct vp_listen_table *t, const char *path, int family, char *buf)
{
	size_t have = 0, total = 0;
	bool skipping = false;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return family == AF_INET6 && errno == ENOENT ? 0 : -errno; /* no IPv6 here */
	for (;;) {
		ssize_t n = read(fd, buf + have, VP_LISTEN_READ_BUF - have);
		char *last;
		size_t start = 0, upto;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		total += (size_t)n;
		have += (size_t)n;
		last = n == 0 ? buf + have : memrchr(buf, '\n', have);
		if (!last) {
			skipping = skipping || have == VP_LISTEN_READ_BUF;
			have = skipping ? 0 : have;
			continue;
		}
		upto = (size_t)(last - buf) + (n == 0 ? 0 : 1);
		if (skipping) {
			const char *first = memchr(buf, '\n', upto);
			start = first ? (size_t)(first - buf) + 1 : upto;
			skipping = false;
		}
		r = vp_listen_parse_proc(t, family, buf + start, upto - start);
		if (r < 0 || n == 0)
			break;
		memmove(buf, buf + upto, have - upto);
		have -= upto;
		if (total >= VP_LISTEN_PROC_BYTES_MAX) {
			t->truncated = true;
			break;
		}
	}
	close(fd);
	return r < 0 ? r : 0;
}

static int read_proc(struct vp_listen_table *t)
{
	char *buf = malloc(VP_LISTEN_READ_BUF);
	int r;

	if (!buf)
		return -ENOMEM;
	r = read_proc_file(t, "/proc/net/tcp", AF_INET, buf);
	if (r == 0)
		r = read_proc_file(t, "/proc/net/tcp6", AF_INET6, buf);
	free(buf);
	return r;
}

/* ---- NETLINK_SOCK_DIAG ---------------------------------------------------- */

/* One inet_diag_msg and its attributes; memcpy throughout, because a test's
 * hand-built buffer need not be aligned. */
static int parse_diag_one(struct vp_listen_table *t, const uint8_t *p, size_t len)
{
	struct inet_diag_msg m;
	struct vp_listen_sock *s;
	size_t off = NLMSG_ALIGN(sizeof(m));
	int r;

	if (len < sizeof(m))
		return 0;
	memcpy(&m, p, sizeof(m));
	if (m.idiag_state != STATE_LISTEN || (m.idiag_family != AF_INET && m.idiag_family != AF_INET6))
		return 0;
	r = table_push(t, &s);
	if (r < 0)
		return r == -ENOSPC ? 0 : r;
	s->family = m.idiag_family;
	if (s->family == AF_INET)
		memcpy(&s->addr.v4, m.id.idiag_src, sizeof(s->addr.v4));
	else
		memcpy(&s->addr.v6, m.id.idiag_src, sizeof(s->addr.v6));
	s->port = ntohs(m.id.idiag_sport);
	s->inode = m.idiag_inode;
	/* For a listener, inet_diag gives sk_ack_backlog and sk_max_ack_backlog. */
	s->queue_cur = m.idiag_rqueue;
	s->queue_max = m.idiag_wqueue;
	s->queue_max_known = true;
	while (len >= off + sizeof(struct rtattr)) {
		struct rtattr a;

		memcpy(&a, p + off, sizeof(a));
		if (a.rta_len < sizeof(a) || a.rta_len > len - off)
			break;
		if (a.rta_type == INET_DIAG_SKV6ONLY && a.rta_len >= RTA_LENGTH(1) && s->family == AF_INET6)
			s->v6only = p[off + RTA_LENGTH(0)] ? VP_V6ONLY_ON : VP_V6ONLY_OFF;
		off += RTA_ALIGN(a.rta_len);
	}
	return 0;
}

int vp_listen_parse_diag(struct vp_listen_table *t, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t off = 0;

	while (len - off >= sizeof(struct nlmsghdr)) {
		struct nlmsghdr h;
		struct nlmsgerr e;
		int r;

		memcpy(&h, p + off, sizeof(h));
		if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len - off)
			return -EBADMSG;
		if (h.nlmsg_type == NLMSG_DONE)
			return 1;
		if (h.nlmsg_type == NLMSG_ERROR) {
			if (h.nlmsg_len < NLMSG_LENGTH(sizeof(e)))
				return -EBADMSG;
			memcpy(&e, p + off + NLMSG_HDRLEN, sizeof(e));
			return e.error < 0 ? e.error : 1;
		}
		if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
			r = parse_diag_one(t, p + off + NLMSG_HDRLEN, h.nlmsg_len - NLMSG_HDRLEN);
			if (r < 0)
				return r;
		}
		off += NLMSG_ALIGN(h.nlmsg_len) < len - off ? NLMSG_ALIGN(h.nlmsg_len) : len - off;
	}
	return off == len ? 0 : -EBADMSG;
}

static int nl_dump(int fd, struct vp_listen_table *t, int family, uint8_t *buf)
{
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = (uint32_t)family },
		.r = { .sdiag_family = (uint8_t)family, .sdiag_protocol = IPPROTO_TCP,
		       .idiag_states = 1u << STATE_LISTEN },
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int r = 0;

	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	while (r == 0) {
		struct sockaddr_nl from;
		struct iovec iov = { .iov_base = buf, .iov_len = VP_LISTEN_READ_BUF };
		struct msghdr msg = { .msg_name = &from, .msg_namelen = sizeof(from),
		                      .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(fd, &msg, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (msg.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
		if (from.nl_pid != 0)
			continue;  /* not from the kernel */
		r = vp_listen_parse_diag(t, buf, (size_t)n);
	}
	/* No IPv6 in this kernel: no handler for the family, no IPv6 sockets. */
	if (r == -ENOENT && family == AF_INET6)
		return 0;
	return r < 0 ? r : 0;
}

static int read_netlink(struct vp_listen_table *t)
{
	struct timeval tv = { .tv_sec = VP_LISTEN_NL_TIMEOUT_MS / 1000,
	                      .tv_usec = (VP_LISTEN_NL_TIMEOUT_MS % 1000) * 1000 };
	uint8_t *buf = NULL;
	int fd, r;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	buf = malloc(VP_LISTEN_READ_BUF);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		goto out;
	}
	r = nl_dump(fd, t, AF_INET, buf);
	if (r == 0)
		r = nl_dump(fd, t, AF_INET6, buf);
out:
	free(buf);
	close(fd);
	return r;
}

/* ---- owners: /proc/PID/fd ------------------------------------------------- */

static int cmp_inode(const void *a, const void *b)
{
	uint64_t x = (*(const struct vp_listen_sock *const *)a)->inode;
	uint64_t y = (*(const struct vp_listen_sock *const *)b)->inode;

	return x < y ? -1 : x > y;
}

/* The process name, as vp_listen_comm_clean() leaves it. */
static void read_comm(int procfd, const char *pid, char *comm)
{
	char path[64];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "%s/comm", pid);
	fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, comm, VP_LISTEN_COMM_MAX - 1);
		close(fd);
	}
	n = n < 0 ? 0 : n;
	comm[n] = '\0';
	if (n > 0 && comm[n - 1] == '\n')
		comm[n - 1] = '\0';
	vp_listen_comm_clean(comm);
}

void vp_listen_comm_clean(char *comm)
{
	vp_utf8_clean(comm, true);
}

/* Looks at one process's descriptors; false once the link budget is spent. */
static bool scan_pid(int procfd, const char *pid, struct vp_listen_sock **idx, size_t n,
                     size_t *links)
{
	char path[64], link[64];
	int fdfd;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/fd", pid);
	fdfd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fdfd < 0)
		return true;  /* gone, or not ours to see: not an error */
	d = fdopendir(fdfd);
	if (!d) {
		close(fdfd);
		return true;
	}
	for (e = readdir(d); e; e = readdir(d)) {
		ssize_t l;
		uint64_t ino;
		struct vp_listen_sock key, *kp = &key, **hit;

		if (e->d_name[0] == '.')
			continue;
		if (++*links > VP_LISTEN_SCAN_LINKS_MAX)
			break;
		l = readlinkat(fdfd, e->d_name, link, sizeof(link) - 1);
		if (l < 10 || memcmp(link, "socket:[", 8) || link[l - 1] != ']')
			continue;
		if (!dec_u64(link + 8, (size_t)l - 9, &ino))
			continue;
		key.inode = ino;
		hit = bsearch(&kp, idx, n, sizeof(*idx), cmp_inode);
		if (hit && (*hit)->pid == 0) {
			(*hit)->pid = (int)strtol(pid, NULL, 10);
			read_comm(procfd, pid, (*hit)->comm);
		}
	}
	closedir(d);
	return *links <= VP_LISTEN_SCAN_LINKS_MAX;
}

int vp_listen_find_owners(struct vp_listen_table *t)
{
	struct vp_listen_sock **idx;
	size_t n = 0, links = 0;
	struct dirent *e;
	DIR *d;
	int procfd;

	idx = malloc((t->n ? t->n : 1) * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++)
		if (t->socks[i].inode)
			idx[n++] = &t->socks[i];
	qsort(idx, n, sizeof(*idx), cmp_inode);
	d = n ? opendir("/proc") : NULL;
	procfd = d ? dirfd(d) : -1;
	for (e = d ? readdir(d) : NULL; e; e = readdir(d)) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9' || strlen(e->d_name) > 10)
			continue;
		if (!scan_pid(procfd, e->d_name, idx, n, &links)) {
			t->owners_partial = true;
			break;
		}
	}
	if (d)
		closedir(d);
	free(idx);
	return 0;
}

/* ---- reading it all ------------------------------------------------------- */

static int cmp_sock(const void *a, const void *b)
{
	const struct vp_listen_sock *x = a, *y = b;

	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	if (x->family != y->family)
		return x->family == AF_INET ? -1 : 1;
	return memcmp(&x->addr, &y->addr, x->family == AF_INET ? sizeof(x->addr.v4) : sizeof(x->addr.v6));
}

void vp_listen_table_sort(struct vp_listen_table *t)
{
	if (t->n > 1)
		qsort(t->socks, t->n, sizeof(*t->socks), cmp_sock);
}

int vp_listen_read(struct vp_listen_table *t, enum vp_listen_source src)
{
	int r = -EINVAL;

	vp_listen_table_done(t);
	if (src == VP_LISTEN_SOURCE_AUTO || src == VP_LISTEN_SOURCE_NETLINK) {
		r = read_netlink(t);
		t->source = VP_LISTEN_SOURCE_NETLINK;
		if (r < 0 && r != -ENOMEM && src == VP_LISTEN_SOURCE_AUTO) {
			t->netlink_err = r;
			t->n = 0;
			t->truncated = false;
			src = VP_LISTEN_SOURCE_PROC;
		}
	}
	if (src == VP_LISTEN_SOURCE_PROC) {
		r = read_proc(t);
		t->source = VP_LISTEN_SOURCE_PROC;
	}
	if (r < 0)
		return r;
	vp_listen_table_sort(t);
	return vp_listen_find_owners(t);
}
