#!/usr/bin/env bash
# Certificates for cluster TLS (`--cluster-tls-cert/-key/-ca` on coordinator and workers):
#
#   scripts/cluster-certs.sh DIR
#
# makes in DIR a new CA (ca.crt, ca.key: keep the key offline) and one member certificate
# signed by it (tls.crt, tls.key) naming `rivulet-cluster`, for both server and client
# use: every coordinator and worker may present the same one, or make one each by
# signing more with the same CA. EC P-256 keys; the CA lasts 10 years, the member 825 days.
# On Kubernetes: kubectl -n rivulet create secret generic rivulet-cluster-tls \
#   --from-file=tls.crt=DIR/tls.crt --from-file=tls.key=DIR/tls.key --from-file=ca.crt=DIR/ca.crt
set -euo pipefail
dir="${1:?usage: scripts/cluster-certs.sh DIR}"
command -v openssl >/dev/null || { echo "cluster-certs.sh: openssl is needed" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -out ca.crt -days 3650 -subj "/CN=rivulet cluster CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
key tls.key
openssl req -new -key tls.key -out tls.csr -subj "/CN=rivulet-cluster" 2>/dev/null
printf 'subjectAltName=DNS:rivulet-cluster\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' > tls.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 825 -extfile tls.ext 2>/dev/null
rm -f tls.csr tls.ext ca.srl
chmod 600 ca.key tls.key
echo "cluster-certs.sh: $dir/{ca.crt,ca.key,tls.crt,tls.key}" >&2
