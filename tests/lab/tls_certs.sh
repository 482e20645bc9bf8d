# tests/lab/tls_certs.sh — sourced by the lab tests that need TLS (pg.sh,
# redis.sh). Certificates and keys are made at test time in the test's
# scratch directory and removed with it; none is ever committed.

# make_tls_certs DIR: in DIR,
#     ca.pem        "vpcprobe lab CA", the CA that ca_file names
#     other-ca.pem  a second CA that signed nothing here: the wrong ca_file
#     server.pem    by ca.pem, for IP 127.0.0.1 and db.lab.test, 30 days
#     expired.pem   by ca.pem, the same names, expired (its notAfter is a
#                   day before its notBefore)
# and the keys next to them (*.key). Returns non-zero, with openssl's
# output in DIR/openssl.log, when openssl fails.
make_tls_certs() {
    local d=$1
    mkdir -p "$d" || return 1
    (
        set -e
        cd "$d"
        key() {
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
        }
        for ca in ca other-ca; do
            key "$ca.key"
            openssl req -x509 -new -key "$ca.key" -out "$ca.pem" -days 30 \
                -subj "/CN=vpcprobe lab $ca"
        done
        printf 'subjectAltName=IP:127.0.0.1,DNS:db.lab.test\n' >san.ext
        for name in server expired; do
            key "$name.key"
            openssl req -new -key "$name.key" -subj /CN=db.lab.test -out "$name.csr"
            openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
                -days "$([[ $name == expired ]] && echo -1 || echo 30)" -extfile san.ext \
                -out "$name.pem"
        done
    ) >"$d/openssl.log" 2>&1
}
