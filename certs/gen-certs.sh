#!/usr/bin/env bash
# gen-certs.sh — create (or reuse) a cluster CA and a certificate per node.
#
# Every nsyncd connection is TLS 1.3 with mutual authentication against the
# cluster CA, so each node needs: the CA certificate (--ca), its own
# certificate (CN and SAN = its node name) and its private key.
#
# The CA is created once and then reused: running the script again for a new
# node signs it with the same CA, so the old nodes trust it without a restart.
# Uses the `openssl` command only; keys are EC P-256 (fast, universally supported).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: gen-certs.sh [--out DIR] [--host NAME_OR_IP]... [--days N] [--force] NAME...

Creates in DIR (default: ./certs):
  ca.pem, ca.key        the cluster CA (created if absent, otherwise reused)
  NAME.pem, NAME.key    per node: CN=NAME, SAN = NAME, localhost, 127.0.0.1
                        and every --host; keys are mode 0600

options:
  --out DIR             output directory (created if missing)
  --host NAME_OR_IP     extra subject alternative name for every NAME (repeatable)
  --days N              node certificate validity in days (default 825;
                        a negative N makes an already-expired certificate, for tests)
  --force               reissue NAME.pem/NAME.key even if they exist

examples:
  certs/gen-certs.sh --out /etc/nsyncd node1 node2 node3
  certs/gen-certs.sh --out /etc/nsyncd --host 10.0.0.4 --host node4.lan node4
EOF
}

out="certs"
days=825
ca_days=3650
force=0
hosts=()
names=()

while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || { usage >&2; exit 2; }; out="$2"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --host) [ $# -ge 2 ] || { usage >&2; exit 2; }; hosts+=("$2"); shift 2 ;;
        --host=*) hosts+=("${1#*=}"); shift ;;
        --days) [ $# -ge 2 ] || { usage >&2; exit 2; }; days="$2"; shift 2 ;;
        --days=*) days="${1#*=}"; shift ;;
        --force) force=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; names+=("$@"); break ;;
        -*) echo "gen-certs.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) names+=("$1"); shift ;;
    esac
done

if [ ${#names[@]} -eq 0 ]; then
    echo "gen-certs.sh: give at least one node NAME" >&2
    usage >&2
    exit 2
fi
if ! [[ "$days" =~ ^-?[0-9]+$ ]] || [ "$days" -eq 0 ]; then
    echo "gen-certs.sh: --days wants a non-zero integer, got '$days'" >&2
    exit 2
fi
command -v openssl >/dev/null || { echo "gen-certs.sh: the openssl command is not installed" >&2; exit 1; }

for name in "${names[@]}"; do
    # The name becomes a file name and the CN nsyncd compares with the node
    # name a peer claims: nsyncd's node-name rule, starting with a letter or digit.
    if ! [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || [ ${#name} -gt 64 ] || [ "$name" = "ca" ]; then
        echo "gen-certs.sh: '$name' is not a valid node name (up to 64 letters, digits, '.', '_', '-'; starts with a letter or digit; not 'ca')" >&2
        exit 2
    fi
done

mkdir -p "$out"
umask 077
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gen-certs.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

is_ip() {
    [[ "$1" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || [[ "$1" == *:*:* ]]
}

ca_pem="$out/ca.pem"
ca_key="$out/ca.key"
if [ -f "$ca_pem" ] && [ -f "$ca_key" ]; then
    echo "reusing cluster CA $ca_pem ($(openssl x509 -in "$ca_pem" -noout -subject))"
elif [ -f "$ca_pem" ] || [ -f "$ca_key" ]; then
    echo "gen-certs.sh: only one of $ca_pem and $ca_key exists; restore the other or remove both to create a new CA" >&2
    exit 1
else
    # A random suffix keeps two clusters' CAs distinguishable in error messages.
    ca_cn="nsyncd cluster CA $(openssl rand -hex 4)"
    cat >"$tmp/ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = $ca_cn
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key"
    openssl req -new -x509 -config "$tmp/ca.cnf" -key "$tmp/ca.key" -sha256 \
        -days "$ca_days" -set_serial "0x$(openssl rand -hex 16)" -out "$tmp/ca.pem"
    chmod 600 "$tmp/ca.key"
    chmod 644 "$tmp/ca.pem"
    mv "$tmp/ca.key" "$ca_key"
    mv "$tmp/ca.pem" "$ca_pem"
    echo "created cluster CA $ca_pem and $ca_key (CN=$ca_cn, valid $ca_days days)"
fi

for name in "${names[@]}"; do
    pem="$out/$name.pem"
    key="$out/$name.key"
    if [ "$force" -eq 0 ] && [ -f "$pem" ] && [ -f "$key" ]; then
        echo "keeping existing $pem and $key (use --force to reissue)"
        continue
    fi

    # SAN: the node name, localhost, 127.0.0.1 and each --host, without duplicates.
    san=""
    seen=" "
    for entry in "$name" localhost 127.0.0.1 "${hosts[@]+"${hosts[@]}"}"; do
        case "$seen" in *" $entry "*) continue ;; esac
        seen="$seen$entry "
        if is_ip "$entry"; then item="IP:$entry"; else item="DNS:$entry"; fi
        san="${san:+$san, }$item"
    done

    cat >"$tmp/node.cnf" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/node.key"
    openssl req -new -key "$tmp/node.key" -subj "/CN=$name" -out "$tmp/node.csr"
    openssl x509 -req -in "$tmp/node.csr" -CA "$ca_pem" -CAkey "$ca_key" -sha256 \
        -days "$days" -set_serial "0x$(openssl rand -hex 16)" \
        -extfile "$tmp/node.cnf" -out "$tmp/node.pem" 2>"$tmp/x509.err" \
        || { cat "$tmp/x509.err" >&2; exit 1; }
    chmod 600 "$tmp/node.key"
    chmod 644 "$tmp/node.pem"
    mv "$tmp/node.key" "$key"
    mv "$tmp/node.pem" "$pem"
    echo "created $pem and $key (CN=$name, SAN: $san, valid $days days)"
done
