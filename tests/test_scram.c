/* Unit tests for probes/scram.c: the RFC 7677 test vector, and every way a
 * server's SCRAM message can be malformed or hostile. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "probes/scram.h"

#define N_ELEMS(a) (int)(sizeof(a) / sizeof((a)[0]))

/* RFC 7677 section 3. */
#define RFC_USER "user"
#define RFC_PASSWORD "pencil"
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_FIRST "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
	"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
	"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

START_TEST(test_rfc7677_vector)
{
	struct vp_scram s;
	char out[VP_SCRAM_MSG_MAX];
	int n;

	n = vp_scram_client_first(&s, RFC_USER, RFC_NONCE, out, sizeof(out));
	ck_assert_int_eq(n, (int)strlen("n,,n=user,r=" RFC_NONCE));
	ck_assert_str_eq(out, "n,,n=user,r=" RFC_NONCE);
	n = vp_scram_client_final(&s, RFC_PASSWORD, strlen(RFC_PASSWORD), RFC_SERVER_FIRST,
	                          strlen(RFC_SERVER_FIRST), out, sizeof(out));
	ck_assert_int_eq(n, (int)strlen(RFC_CLIENT_FINAL));
	ck_assert_str_eq(out, RFC_CLIENT_FINAL);
	ck_assert_int_eq(vp_scram_verify_final(&s, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), 0);
	/* With extensions after the signature, too. */
	ck_assert_int_eq(vp_scram_verify_final(&s, RFC_SERVER_FINAL ",x=1",
	                                       strlen(RFC_SERVER_FINAL ",x=1")), 0);
	vp_scram_done(&s);
	ck_assert_int_eq(vp_scram_verify_final(&s, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)),
	                 -EBADMSG);
}
END_TEST

/* A wrong password gives another proof, and the real server's signature
 * no longer matches: the client can tell an impostor. */
START_TEST(test_wrong_password)
{
	struct vp_scram s;
	char out[VP_SCRAM_MSG_MAX];

	ck_assert_int_gt(vp_scram_client_first(&s, RFC_USER, RFC_NONCE, out, sizeof(out)), 0);
	ck_assert_int_gt(vp_scram_client_final(&s, "pencil2", 7, RFC_SERVER_FIRST,
	                                       strlen(RFC_SERVER_FIRST), out, sizeof(out)), 0);
	ck_assert_str_ne(out, RFC_CLIENT_FINAL);
	ck_assert_int_eq(vp_scram_verify_final(&s, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)),
	                 -EACCES);
}
END_TEST

/* A random nonce: 24 base64 characters, different every time. */
START_TEST(test_random_nonce)
{
	struct vp_scram a, b;
	char out[VP_SCRAM_MSG_MAX];

	ck_assert_int_eq(vp_scram_client_first(&a, "", NULL, out, sizeof(out)),
	                 (int)strlen("n,,n=,r=") + VP_SCRAM_NONCE_LEN);
	ck_assert_int_eq(strncmp(out, "n,,n=,r=", 8), 0);
	ck_assert_uint_eq(strlen(a.nonce), VP_SCRAM_NONCE_LEN);
	ck_assert_ptr_null(strchr(a.nonce, ','));
	ck_assert_int_gt(vp_scram_client_first(&b, "", NULL, out, sizeof(out)), 0);
	ck_assert_str_ne(a.nonce, b.nonce);
}
END_TEST

struct first_case {
	const char *user;
	const char *nonce;
	size_t outlen;
	int r;
	const char *out;
};

static const struct first_case first_cases[] = {
	{ "user", "abc", 64, 15, "n,,n=user,r=abc" },
	{ "a,b=c", "abc", 64, 20, "n,,n=a=2Cb=3Dc,r=abc" },
	{ "", "abc", 64, 11, "n,,n=,r=abc" },
	{ "user", "a,b", 64, -EINVAL, NULL },        /* ',' ends an attribute */
	{ "user", "a b", 64, -EINVAL, NULL },        /* not printable */
	{ "user", "", 64, -EINVAL, NULL },
	{ "user", "abc", 15, -ENOSPC, NULL },        /* one byte short */
	{ "user", "abc", 16, 15, "n,,n=user,r=abc" },
};

START_TEST(test_client_first)
{
	const struct first_case *c = &first_cases[_i];
	struct vp_scram s;
	char out[64];

	ck_assert_int_eq(vp_scram_client_first(&s, c->user, c->nonce, out, c->outlen), c->r);
	if (c->out != NULL)
		ck_assert_str_eq(out, c->out);
}
END_TEST

/* Server-first messages after client-first with nonce "abc". */
struct final_case {
	const char *server_first;
	size_t len;               /* 0: strlen */
	int r;
};

#define SALT "s=W22ZaJ0SNY7soEsUEjb6gQ=="

static const struct final_case final_cases[] = {
	{ "r=abcdef," SALT ",i=4096", 0, 62 },
	{ "r=abcdef," SALT ",i=4096,x=ext", 0, 62 },        /* extensions are ignored */
	{ "r=abcdef," SALT ",i=1", 0, 62 },
	{ "r=abcdef," SALT ",i=100000", 0, 62 },
	{ "r=abcdef," SALT ",i=100001", 0, -ERANGE },      /* past VP_SCRAM_ITER_MAX */
	{ "r=abcdef," SALT ",i=4294967296", 0, -ERANGE },
	{ "r=abcdef," SALT ",i=99999999999999999999", 0, -ERANGE },
	{ "r=abcdef," SALT ",i=0", 0, -EBADMSG },
	{ "r=abcdef," SALT ",i=-1", 0, -EBADMSG },
	{ "r=abcdef," SALT ",i=04096", 0, -EBADMSG },
	{ "r=abcdef," SALT ",i=", 0, -EBADMSG },
	{ "r=abcdef," SALT ",i=4k", 0, -EBADMSG },
	{ "r=abcdef," SALT, 0, -EBADMSG },                 /* no iteration count */
	{ "r=abcdef,i=4096," SALT, 0, -EBADMSG },          /* out of order */
	{ "r=abc," SALT ",i=4096", 0, -EBADMSG },          /* the server added nothing */
	{ "r=abd123," SALT ",i=4096", 0, -EBADMSG },       /* not our nonce */
	{ "r=ab," SALT ",i=4096", 0, -EBADMSG },
	{ "r=abc\x01x," SALT ",i=4096", 0, -EBADMSG },     /* a control character */
	{ "r=abcdef,s=,i=4096", 0, -EBADMSG },             /* empty salt */
	{ "r=abcdef,s=W22Z*J0S,i=4096", 0, -EBADMSG },     /* not base64 */
	{ "r=abcdef,s=W22ZaJ0,i=4096", 0, -EBADMSG },      /* not whole quads */
	{ "r=abcdef,s=W2==aJ0S,i=4096", 0, -EBADMSG },     /* padding inside */
	{ "r=abcdef,s====,i=4096", 0, -EBADMSG },
	{ "m=ext,r=abcdef," SALT ",i=4096", 0, -ENOTSUP }, /* a mandatory extension */
	{ "", 0, -EBADMSG },
	{ "r=abcdef", 0, -EBADMSG },
	{ "garbage", 0, -EBADMSG },
	{ "r=abcdef\0," SALT ",i=4096", sizeof("r=abcdef\0," SALT ",i=4096") - 1, -EBADMSG }, /* an embedded NUL */
	{ "r=abcdef,s=\xff\xfe\xfd\xfc,i=4096", 0, -EBADMSG },  /* invalid UTF-8 */
};

START_TEST(test_client_final)
{
	const struct final_case *c = &final_cases[_i];
	size_t len = c->len ? c->len : strlen(c->server_first);
	struct vp_scram s;
	char out[VP_SCRAM_MSG_MAX];
	int r;

	ck_assert_int_gt(vp_scram_client_first(&s, "", "abc", out, sizeof(out)), 0);
	r = vp_scram_client_final(&s, "pw", 2, c->server_first, len, out, sizeof(out));
	ck_assert_msg(r == c->r, "row %d: expected %d, got %d", _i, c->r, r);
	ck_assert(s.have_signature == (r > 0));
	if (r > 0)
		ck_assert_int_eq(strncmp(out, "c=biws,r=abcdef,p=", 18), 0);
}
END_TEST

/* An absurdly long server-first: refused whole, never read past its end. */
START_TEST(test_client_final_huge)
{
	struct vp_scram s;
	char out[VP_SCRAM_MSG_MAX];
	size_t len = 70000;
	char *big = malloc(len);

	ck_assert_ptr_nonnull(big);
	memset(big, 'a', len);
	memcpy(big, "r=abc", 5);
	ck_assert_int_gt(vp_scram_client_first(&s, "", "abc", out, sizeof(out)), 0);
	ck_assert_int_eq(vp_scram_client_final(&s, "pw", 2, big, len, out, sizeof(out)), -EBADMSG);
	ck_assert_int_eq(vp_scram_client_final(&s, "pw", 2, big, VP_SCRAM_MSG_MAX, out,
	                                       sizeof(out)), -EBADMSG);
	/* A small output buffer: -ENOSPC, not an overrun. */
	ck_assert_int_eq(vp_scram_client_final(&s, "pw", 2, "r=abcdef," SALT ",i=1",
	                                       strlen("r=abcdef," SALT ",i=1"), out, 40), -ENOSPC);
	free(big);
}
END_TEST

struct verify_case {
	const char *server_final;
	size_t len;               /* 0: strlen */
	int r;
};

static const struct verify_case verify_cases[] = {
	{ RFC_SERVER_FINAL, 0, 0 },
	{ "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", 0, -EACCES },  /* one bit flipped */
	{ "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0, -EACCES },
	{ "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95A==", 0, -EACCES },  /* too short */
	{ "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=AAAA", 0, -EBADMSG }, /* '=' inside */
	{ "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4AAAAA", 0, -EBADMSG }, /* 36 bytes */
	{ "e=invalid-proof", 0, -EPERM },
	{ "e=", 0, -EPERM },
	{ "v=", 0, -EBADMSG },
	{ "v=!!!!", 0, -EBADMSG },
	{ "x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", 0, -EBADMSG },
	{ "v", 0, -EBADMSG },
	{ "", 0, -EBADMSG },
	{ RFC_SERVER_FINAL "\0", sizeof(RFC_SERVER_FINAL), -EBADMSG },
};

START_TEST(test_verify_final)
{
	const struct verify_case *c = &verify_cases[_i];
	size_t len = c->len ? c->len : strlen(c->server_final);
	struct vp_scram s;
	char out[VP_SCRAM_MSG_MAX];

	ck_assert_int_gt(vp_scram_client_first(&s, RFC_USER, RFC_NONCE, out, sizeof(out)), 0);
	ck_assert_int_gt(vp_scram_client_final(&s, RFC_PASSWORD, strlen(RFC_PASSWORD),
	                                       RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out,
	                                       sizeof(out)), 0);
	ck_assert_msg(vp_scram_verify_final(&s, c->server_final, len) == c->r, "row %d", _i);
}
END_TEST

static Suite *scram_suite(void)
{
	Suite *s = suite_create("scram");
	TCase *tc = tcase_create("scram");

	tcase_add_test(tc, test_rfc7677_vector);
	tcase_add_test(tc, test_wrong_password);
	tcase_add_test(tc, test_random_nonce);
	tcase_add_loop_test(tc, test_client_first, 0, N_ELEMS(first_cases));
	tcase_add_loop_test(tc, test_client_final, 0, N_ELEMS(final_cases));
	tcase_add_test(tc, test_client_final_huge);
	tcase_add_loop_test(tc, test_verify_final, 0, N_ELEMS(verify_cases));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(scram_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
