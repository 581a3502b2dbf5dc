#!/usr/bin/env bash
# End to end: OpenSSH uses token keys through the module. `ssh-keygen -D`
# prints the token's public keys; `ssh -I <module>` logs in to a loopback sshd
# (started here on 127.0.0.1 with a private sshd_config and host key, whose
# AuthorizedKeysFile holds only the token keys) and runs a command; `ssh-agent`
# with `ssh-add -s <module>` (allowed by -P) then serves the same logins. Each
# of {software key, TPM key (swtpm)} x {RSA-2048, P-256} is selected by its
# public key (IdentitiesOnly) and sshd's log must name that key's fingerprint.
# The PIN comes from SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force); a PIN-less token
# logs in with BatchMode=yes and no askpass. Negative: without the token key the
# login is refused.
set -uo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd ssh sshd ssh-keygen ssh-agent ssh-add pkcs11-tool openssl
SSHD=$(command -v sshd)
ksp_setup
require_module
cd "$TEST_DIR" || exit 1
ME=$(id -un)

# sshd run as root needs its privilege separation directory (Debian's unit
# makes it at boot; it is empty and shared by every sshd).
if [ "$(id -u)" -eq 0 ] && [ ! -d /run/sshd ]; then
    mkdir -m 0755 /run/sshd || skip_all "cannot create /run/sshd for sshd's privilege separation"
fi

ksp_matrix_tokens || true
# A PIN-less token (a machine's or a daemon's key): no PIN, no prompt.
PINLESS=0
if check pinless-token make_pinless_token nopin "$KSP_SO_PIN" &&
    check pinless-keygen p11 --token-label nopin --keypairgen --key-type EC:prime256v1 --id 01 \
        --label ec &&
    check pinless-read-pubkey p11 --token-label nopin --read-object --type pubkey --id 01 \
        -o pub-nopin-ec.der && der_to_pubpem pub-nopin-ec.der pub-nopin-ec.pem; then
    PINLESS=1
fi

# OpenSSH public keys of the matrix keys, from the public keys on the token.
for t in $KSP_MATRIX_TOKENS; do
    for k in $KSP_MATRIX_KEYS; do
        ssh-keygen -i -m PKCS8 -f "pub-$t-$k.pem" >"id-$t-$k.pub" 2>/dev/null ||
            fail "ssh-pubkey-$t-$k" "ssh-keygen -i could not convert the token's public key"
    done
done
if [ "$PINLESS" -eq 1 ]; then
    ssh-keygen -i -m PKCS8 -f pub-nopin-ec.pem >id-nopin-ec.pub 2>/dev/null ||
        fail ssh-pubkey-nopin-ec "ssh-keygen -i could not convert the token's public key"
fi

# ssh-keygen -D: every matrix key, read through the module, no PIN needed.
if check ssh-keygen-D ssh-keygen -D "$KSP11_MODULE"; then
    out=$(ksp_outfile ssh-keygen-D)
    for t in $KSP_MATRIX_TOKENS; do
        for k in $KSP_MATRIX_KEYS; do
            check "ssh-keygen-D-lists-$t-$k" grep -qF -- "$(cut -d' ' -f2 "id-$t-$k.pub")" "$out" || true
        done
    done
fi

# The loopback sshd: own host key, only the token keys authorised.
mkdir -p sshd
chmod 700 sshd
ssh-keygen -q -t ed25519 -N '' -f sshd/host_key
cat id-*.pub >sshd/authorized_keys
cat >sshd/sshd_config <<CONF
ListenAddress 127.0.0.1
HostKey $TEST_DIR/sshd/host_key
PidFile $TEST_DIR/sshd/sshd.pid
AuthorizedKeysFile $TEST_DIR/sshd/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
LogLevel VERBOSE
CONF

sshd_ok=0
for try in 1 2 3 4 5; do
    PORT=$(pick_port) || break
    "$SSHD" -D -e -f sshd/sshd_config -p "$PORT" -E "$TEST_DIR/sshd/sshd.log" &
    SSHD_PID=$!
    ksp_track_pid "$SSHD_PID"
    if ksp_wait_port "$PORT" 100 && kill -0 "$SSHD_PID" 2>/dev/null; then
        sshd_ok=1
        break
    fi
    ksp_kill_pid "$SSHD_PID"
    : "$try"
done
if [ "$sshd_ok" -ne 1 ]; then
    fail sshd-start "sshd did not start"
    show_tail sshd/sshd.log
    ksp_finish
    exit 1
fi
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 sshd/host_key.pub)" >known_hosts

# The PIN through SSH_ASKPASS: ssh has no terminal here.
printf '#!/bin/sh\necho %s\n' "$KSP_PIN" >askpass.sh
chmod 700 askpass.sh
export SSH_ASKPASS=$TEST_DIR/askpass.sh SSH_ASKPASS_REQUIRE=force DISPLAY=:0

# ssh takes the first value of an option: callers put theirs (BatchMode) first.
SSH_OPTS=(-F /dev/null -p "$PORT" -o UserKnownHostsFile="$TEST_DIR/known_hosts"
    -o StrictHostKeyChecking=yes -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no
    -o IdentitiesOnly=yes -o ConnectTimeout=30)

# accepted_key T K FROM: sshd accepted the key of id-T-K.pub (by fingerprint)
# in its log after line FROM.
accepted_key() {
    local fp
    fp=$(ssh-keygen -l -E sha256 -f "id-$1-$2.pub" | awk '{print $2}')
    tail -n "+$(($3 + 1))" sshd/sshd.log | grep -F "Accepted publickey for $ME" | grep -qF "$fp"
}

ssh_login() {
    local name=$1 t=$2 k=$3 out from
    shift 3
    out=$(ksp_outfile "$name")
    from=$(wc -l <sshd/sshd.log)
    if check "$name" timeout 90 ssh "$@" "${SSH_OPTS[@]}" -i "id-$t-$k.pub" "$ME@127.0.0.1" \
        echo "ksp11-login-$t-$k"; then
        check_grep "$name-ran-command" "^ksp11-login-$t-$k\$" "$out" || true
        check "$name-sshd-accepted-token-key" accepted_key "$t" "$k" "$from" || true
    fi
}

for t in $KSP_MATRIX_TOKENS; do
    for k in $KSP_MATRIX_KEYS; do
        ssh_login "ssh-I-$t-$k" "$t" "$k" -o BatchMode=no -I "$KSP11_MODULE" \
            -o IdentityAgent=none
    done
done

# The PIN-less token in batch mode, with no askpass at all.
if [ "$PINLESS" -eq 1 ]; then
    unset SSH_ASKPASS SSH_ASKPASS_REQUIRE
    ssh_login ssh-I-pinless nopin ec -o BatchMode=yes -I "$KSP11_MODULE" -o IdentityAgent=none
    export SSH_ASKPASS=$TEST_DIR/askpass.sh SSH_ASKPASS_REQUIRE=force
    # ... while a PIN-protected key cannot be used in batch mode (ssh exits 255).
    batch_needs_pin() {
        local rc=0
        timeout 90 ssh -o BatchMode=yes "${SSH_OPTS[@]}" -I "$KSP11_MODULE" -o IdentityAgent=none \
            -i id-soft-ec.pub "$ME@127.0.0.1" echo logged-in || rc=$?
        [ "$rc" -eq 255 ]
    }
    check ssh-I-batch-mode-needs-pin batch_needs_pin || true
fi

# Negative: no token key, no login (a fresh key the server does not know).
ssh-keygen -q -t ed25519 -N '' -f stranger
# ssh exits 255 on an authentication failure.
ssh_refused() {
    local rc=0
    timeout 90 ssh -o BatchMode=yes "${SSH_OPTS[@]}" -o IdentityAgent=none -i stranger \
        "$ME@127.0.0.1" echo logged-in || rc=$?
    [ "$rc" -eq 255 ]
}
check ssh-without-token-key-refused ssh_refused || true
check_grep ssh-without-token-key-reason 'Permission denied \(publickey\)' \
    "$(ksp_outfile ssh-without-token-key-refused)" || true

# ssh-agent: the module must be allowed with -P (matched against its real
# path); ssh-add -s loads every token key.
AGENT_SOCK=$TEST_DIR/agent.sock
ssh-agent -D -a "$AGENT_SOCK" -P "$(realpath "$KSP11_MODULE")" >agent.log 2>&1 &
AGENT_PID=$!
ksp_track_pid "$AGENT_PID"
if ! ksp_wait_path "$AGENT_SOCK" 100; then
    fail ssh-agent-start "ssh-agent did not start"
    show_tail agent.log
else
    export SSH_AUTH_SOCK=$AGENT_SOCK
    if check ssh-add-s timeout 90 ssh-add -s "$KSP11_MODULE"; then
        if check ssh-add-L ssh-add -L; then
            for t in $KSP_MATRIX_TOKENS; do
                for k in $KSP_MATRIX_KEYS; do
                    check "ssh-add-L-has-$t-$k" grep -qF -- "$(cut -d' ' -f2 "id-$t-$k.pub")" \
                        "$(ksp_outfile ssh-add-L)" || true
                done
            done
        fi
        for t in $KSP_MATRIX_TOKENS; do
            for k in $KSP_MATRIX_KEYS; do
                # BatchMode=yes: the agent has the PIN, nothing may prompt.
                ssh_login "ssh-agent-$t-$k" "$t" "$k" -o BatchMode=yes \
                    -o IdentityAgent="$AGENT_SOCK" \
                    -o PKCS11Provider=none
            done
        done
        check ssh-add-e timeout 90 ssh-add -e "$KSP11_MODULE" || true
    fi
    # An agent without the allowance refuses the module.
    ssh-agent -D -a "$TEST_DIR/agent2.sock" -P /nonexistent/path.so >agent2.log 2>&1 &
    ksp_track_pid $!
    if ksp_wait_path "$TEST_DIR/agent2.sock" 100; then
        check_fails ssh-agent-P-refuses-other-paths env SSH_AUTH_SOCK="$TEST_DIR/agent2.sock" \
            timeout 90 ssh-add -s "$KSP11_MODULE" || true
    fi
fi

if kill -0 "$SSHD_PID" 2>/dev/null; then pass sshd-alive; else fail sshd-alive "sshd exited"; fi
ksp_finish
