/* The peer agent's answer (agent/peer.h, issue 3): vp_peer_read_reply()
 * reads what another host's status server sent to
 * GET /api/v1/listeners?port=N, and the verdict is built from it. The input
 * is a flag byte, the port asked for (two bytes, big-endian), then the body
 * as the peer sent it. The flag byte's low bit says whether a token was
 * sent; its next three bits choose the HTTP status (mostly 200, so that the
 * body is read as a table) and the two above them the refused address the
 * verdict is built for (IPv4 of the lab, loopback, or IPv6).
 *
 * Besides what ASan and UBSan catch, the reader's promises: one phrase in
 * 'why' exactly when it fails, a table of the port asked for within its
 * bounds, process names printable, and a verdict that stays a refusal or
 * becomes localhost_only, with nothing from the peer unmasked in the detail. */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>

#include "agent/peer.h"
#include "tests/fuzz/fuzz.h"

#define AGENT_URL "http://198.18.0.2:9464"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

static const long codes[8] = { 200, 200, 200, 200, 401, 404, 400, 503 };

static void check_out(const struct vp_verdict_out *out, bool may_localize)
{
	VP_FUZZ_CHECK(out->verdict == VP_VERDICT_REFUSED ||
	              (may_localize && out->verdict == VP_VERDICT_LOCALHOST_ONLY));
	VP_FUZZ_CHECK(out->verdict != VP_VERDICT_LOCALHOST_ONLY ||
	              out->reason == VP_REASON_LOOPBACK_BIND);
	VP_FUZZ_CHECK(vp_fuzz_terminated(out->detail, sizeof(out->detail)));
	VP_FUZZ_CHECK(vp_fuzz_terminated(out->hint, sizeof(out->hint)));
	VP_FUZZ_CHECK(vp_fuzz_printable(out->detail) && vp_fuzz_printable(out->hint));
}

static void refused(struct vp_verdict_out *out)
{
	memset(out, 0, sizeof(*out));
	out->verdict = VP_VERDICT_REFUSED;
	out->reason = VP_REASON_RST_TO_SYN;
	snprintf(out->detail, sizeof(out->detail), "connection refused");
}

static void check_answer(const struct vp_peer_answer *a, uint16_t port)
{
	VP_FUZZ_CHECK(a->port == port);
	VP_FUZZ_CHECK(a->scope >= 0 && a->scope < VP_SCOPE_MAX);
	VP_FUZZ_CHECK(a->n <= VP_PEER_SOCKETS_MAX);
	VP_FUZZ_CHECK((a->scope == VP_SCOPE_NOT_LISTENING) == (a->n == 0));
	for (size_t i = 0; i < a->n; i++) {
		const struct vp_listen_sock *s = &a->socks[i];

		VP_FUZZ_CHECK(s->family == AF_INET || s->family == AF_INET6);
		VP_FUZZ_CHECK(s->port == port && s->pid >= 0);
		VP_FUZZ_CHECK(vp_fuzz_terminated(s->comm, sizeof(s->comm)));
		VP_FUZZ_CHECK(vp_fuzz_printable(s->comm));
		VP_FUZZ_CHECK((s->pid > 0) == (s->comm[0] != '\0'));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vp_peer_reply *rep;
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
	const struct sockaddr *sa;
	const char *addr_text;
	struct vp_verdict_out out;
	uint16_t port;
	uint8_t flags;
	char *body;

	if (size < 3)
		return 0;
	flags = data[0];
	port = (uint16_t)(data[1] << 8 | data[2]);
	data += 3;
	size -= 3;
	/* Exactly the body's bytes, no terminator: the reader gets a length
	 * and must not read past it (libcurl's buffer has no NUL either). */
	body = malloc(size > 0 ? size : 1);
	rep = malloc(sizeof(*rep));
	if (body == NULL || rep == NULL)
		goto out;
	if (size > 0)
		memcpy(body, data, size);

	vp_peer_read_reply(codes[(flags >> 1) & 7], body, size, port, flags & 1, rep);
	VP_FUZZ_CHECK(vp_fuzz_terminated(rep->why, sizeof(rep->why)));
	VP_FUZZ_CHECK(vp_fuzz_printable(rep->why));
	VP_FUZZ_CHECK(rep->status <= 0);
	VP_FUZZ_CHECK((rep->status == 0) == (rep->why[0] == '\0'));
	VP_FUZZ_CHECK(rep->status == 0 || rep->status == -EACCES || rep->status == -EPROTO ||
	              rep->status == -EBADMSG);

	switch ((flags >> 4) & 3) {
	case 0:
	case 1:
		v4.sin_addr.s_addr = htonl(0xc6120002); /* 198.18.0.2 */
		sa = (const struct sockaddr *)&v4;
		addr_text = "198.18.0.2";
		break;
	case 2:
		v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa = (const struct sockaddr *)&v4;
		addr_text = "127.0.0.1";
		break;
	default:
		(void)inet_pton(AF_INET6, "fd00:198:18::2", &v6.sin6_addr);
		sa = (const struct sockaddr *)&v6;
		addr_text = "fd00:198:18::2";
		break;
	}
	refused(&out);
	if (rep->status == 0) {
		check_answer(&rep->answer, port);
		vp_peer_refine(&rep->answer, sa, addr_text, AGENT_URL, &out);
		/* Loopback refused is never localhost_only: the probe came from
		 * the host itself. */
		check_out(&out, ((flags >> 4) & 3) != 2);
	} else {
		vp_peer_unasked(addr_text, port, AGENT_URL, rep->why, &out);
		check_out(&out, false);
		VP_FUZZ_CHECK(out.reason == VP_REASON_RST_TO_SYN);
	}
out:
	free(body);
	free(rep);
	return 0;
}
