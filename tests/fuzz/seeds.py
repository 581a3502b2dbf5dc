#!/usr/bin/env python3
"""Write the hand-made seed inputs of the PKCS#11-level harnesses (attrs, mech,
calls) into tests/fuzz/corpus/<h>/. Each seed is one meaningful call or call
sequence in the byte encoding the harness reads (tests/fuzz/fuzz_common.c:
fuzz_template, fuzz_ulong, fuzz_bytes; clang evaluates operands left to right).
The object-file, metadata, config and deny-list seeds are real files made by
the module and the package (see tests/fuzz/README).
    python3 tests/fuzz/seeds.py
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# indexes into fuzz_attr_types[] / fuzz_mechs[] (fuzz_common.c)
A = {n: i for i, n in enumerate(
    "CLASS TOKEN PRIVATE LABEL APPLICATION VALUE OBJECT_ID CERTIFICATE_TYPE ISSUER "
    "SERIAL_NUMBER SUBJECT ID KEY_TYPE SENSITIVE ENCRYPT DECRYPT WRAP UNWRAP SIGN "
    "SIGN_RECOVER VERIFY VERIFY_RECOVER DERIVE START_DATE END_DATE MODULUS MODULUS_BITS "
    "PUBLIC_EXPONENT PRIVATE_EXPONENT PRIME_1 PRIME_2 EXPONENT_1 EXPONENT_2 COEFFICIENT "
    "PUBLIC_KEY_INFO VALUE_LEN EXTRACTABLE LOCAL NEVER_EXTRACTABLE ALWAYS_SENSITIVE "
    "KEY_GEN_MECHANISM MODIFIABLE COPYABLE DESTROYABLE EC_PARAMS EC_POINT".split())}
M = {n: i for i, n in enumerate(
    "RSA_GEN EC_GEN RSA_PKCS RSA_X_509 RSA_PKCS_PSS RSA_PKCS_OAEP SHA1_RSA SHA224_RSA "
    "SHA256_RSA SHA384_RSA SHA512_RSA SHA1_PSS SHA224_PSS SHA256_PSS SHA384_PSS SHA512_PSS "
    "ECDSA ECDSA_SHA1 ECDSA_SHA224 ECDSA_SHA256 ECDSA_SHA384 ECDSA_SHA512 ECDH1 SHA_1 "
    "SHA224 SHA256 SHA384 SHA512 AES_GEN GENERIC_GEN AES_CBC_PAD VENDOR".split())}
CLASSES = {"DATA": 0, "CERTIFICATE": 1, "PUBLIC_KEY": 2, "PRIVATE_KEY": 3, "SECRET_KEY": 4}
KEYTYPES = {"RSA": 0, "EC": 1, "AES": 2}
P256 = 0


def b(attr, v):      # CK_BBOOL
    return bytes([A[attr], 0, v])


def cls(name):       # CKA_CLASS, well-formed
    return bytes([A["CLASS"], 2, CLASSES[name]])


def ktype(name):
    return bytes([A["KEY_TYPE"], 2, KEYTYPES[name]])


def ulong(attr, v):  # small CK_ULONG (< 64)
    return bytes([A[attr], 1, v << 2])


def ulong32(attr, v):
    return bytes([A[attr], 1, 1]) + v.to_bytes(4, "little")


def raw(attr, data):
    return bytes([A[attr], 5, len(data)]) + data


def curve(attr="EC_PARAMS"):
    return bytes([A[attr], 4, P256])


def tmpl(*attrs):
    return bytes([len(attrs)]) + b"".join(attrs)


EC_POINT = bytes([0x04, 0x41, 0x04]) + bytes(range(1, 65))


def attrs_seeds():
    return {
        "create-data": bytes([0]) + tmpl(cls("DATA"), b("TOKEN", 0), raw("LABEL", b"d"),
                                         raw("VALUE", b"hello")),
        "create-data-token": bytes([0]) + tmpl(cls("DATA"), b("TOKEN", 1), b("PRIVATE", 1),
                                               raw("APPLICATION", b"app")),
        "create-ec-pub": bytes([0]) + tmpl(cls("PUBLIC_KEY"), ktype("EC"), curve(),
                                           raw("EC_POINT", EC_POINT), b("VERIFY", 1)),
        "create-priv-nonsensitive": bytes([0]) + tmpl(cls("PRIVATE_KEY"), ktype("EC"), curve(),
                                                      raw("VALUE", bytes(32)),
                                                      b("SENSITIVE", 0)),
        "create-aes": bytes([0]) + tmpl(cls("SECRET_KEY"), ktype("AES"), raw("VALUE", bytes(16))),
        "set-label": bytes([1]) + tmpl(raw("LABEL", b"new")) + bytes([3]),
        "set-extractable": bytes([1]) + tmpl(b("EXTRACTABLE", 1)) + bytes([2]),
        "set-sensitive-off": bytes([1]) + tmpl(b("SENSITIVE", 0)) + bytes([2]),
        "find-private": bytes([2]) + tmpl(cls("PRIVATE_KEY")) + bytes([8]),
        "find-all": bytes([2, 0, 8]),
        "gen-ec": bytes([3]) + tmpl(curve(), b("VERIFY", 1)) + bytes([0]) +
        tmpl(b("SIGN", 1), b("TOKEN", 0)),
        "gen-rsa": bytes([3]) + tmpl(ulong32("MODULUS_BITS", 2048), b("ENCRYPT", 1)) +
        bytes([1]) + tmpl(b("DECRYPT", 1)),
        "gen-ec-bad-curve": bytes([3]) + tmpl(bytes([A["EC_PARAMS"], 4, 2])) + bytes([0]) +
        tmpl(b("SIGN", 1)),
    }


def mech_seed(op, mode, key, mech, param=b"\x00\x00", data=b"hello", extra=b""):
    return bytes([op, mode, key, 1, M[mech]]) + param + bytes([len(data)]) + data + extra


def pss(hash_idx, mgf_idx, slen):
    # kind 2: hash pick, mgf pick, (u8 % 4 != 0 -> sLen = u8 % 80), exact length
    return bytes([2, hash_idx, mgf_idx, 1, slen, 1])


def oaep(hash_idx, mgf_idx, label=b""):
    # kind 3: label bytes, hash, mgf, source, keep pointer, exact length
    return bytes([3, len(label)]) + label + bytes([hash_idx, mgf_idx, 1, 1, 1])


def mech_seeds():
    # keys: 0 rsa pub, 1 rsa priv, 2 ec pub, 3 ec priv, 4 data object
    # hashes: 0 SHA1 1 SHA224 2 SHA256; mgfs: 0 SHA1 1 SHA224 2 SHA256
    return {
        "sign-ecdsa-sha256": mech_seed(0, 2, 3, "ECDSA_SHA256"),
        "sign-ecdsa-multipart": mech_seed(0, 0, 3, "ECDSA_SHA256"),
        "sign-ecdsa-raw": mech_seed(0, 2, 3, "ECDSA", data=bytes(32)),
        "sign-rsa-pkcs": mech_seed(0, 3, 1, "SHA256_RSA"),
        "sign-pss": mech_seed(0, 2, 1, "SHA256_PSS", param=pss(2, 2, 32)),
        "sign-pss-raw": mech_seed(0, 2, 1, "RSA_PKCS_PSS", param=pss(2, 2, 32), data=bytes(32)),
        "sign-pss-bad-salt": mech_seed(0, 2, 1, "SHA256_PSS", param=pss(2, 2, 20)),
        "verify-ecdsa": mech_seed(1, 2, 2, "ECDSA_SHA256", extra=bytes([64]) + bytes(64)),
        "encrypt-oaep": mech_seed(2, 2, 0, "RSA_PKCS_OAEP", param=oaep(2, 2, b"label")),
        "decrypt-oaep": mech_seed(3, 2, 1, "RSA_PKCS_OAEP", param=oaep(0, 0), data=bytes(200)),
        "decrypt-x509-signonly": mech_seed(3, 2, 1, "RSA_X_509", data=bytes(255)),
        "encrypt-pkcs": mech_seed(2, 3, 0, "RSA_PKCS"),
        "digest-sha256": mech_seed(4, 2, 4, "SHA256"),
        "digest-key": mech_seed(4, 4, 3, "SHA256"),
        "derive-ecdh": mech_seed(7, 0, 3, "ECDH1",
                                 param=bytes([4, 0, 0, 3, 0]), data=b"",
                                 extra=tmpl(cls("SECRET_KEY"), ktype("AES"),
                                            ulong("VALUE_LEN", 16))),
    }


# fuzz_calls opcodes
OPEN, CLOSE, CLOSEALL, LOGIN, LOGOUT, CREATE, DESTROY, FINDINIT, FIND, FINDFINAL, GETATTR, \
    SETATTR, GENEC, SIGNINIT, SIGN, SIGNUPDATE, SIGNFINAL, VERIFYINIT, VERIFY, DIGESTINIT, \
    DIGEST, CRYPTINIT, CRYPT, INFO, COPY, REINIT = range(26)


def calls_seeds():
    open_rw = bytes([OPEN, 1, 1])
    login_user = bytes([LOGIN, 0, 0, 0])
    login_so = bytes([LOGIN, 1, 0, 1])
    gen = bytes([GENEC, 0, 0])
    return {
        "open-login-sign": open_rw + login_user + gen +
        bytes([SIGNINIT, 1, 0, 1]) + bytes([SIGN, 5]) + b"hello" + bytes([1, 0, 1]),
        "multipart-sign": open_rw + login_user + gen + bytes([SIGNINIT, 1, 0, 1]) +
        bytes([SIGNUPDATE, 3]) + b"abc" + bytes([0]) + bytes([SIGNFINAL, 0, 10, 0, 1]) +
        bytes([SIGNFINAL, 1, 0, 1]),
        "so-then-user": open_rw + login_so + bytes([LOGOUT, 0]) + login_user +
        bytes([CREATE, 1, 1, 16, 0]),
        "wrong-pin": open_rw + bytes([LOGIN, 0, 0, 2]) + bytes([LOGIN, 0, 0, 3]) + login_user,
        "find-and-destroy": open_rw + login_user + bytes([CREATE, 0, 0, 4, 0]) +
        bytes([FINDINIT, 0, 0, 1, FIND, 0, 4, FINDFINAL, 0, DESTROY, 0, 0]),
        "reinit": open_rw + login_user + gen + bytes([REINIT, 0]) + open_rw +
        bytes([SIGNINIT, 1, 0, 1]),
        "ro-session-write": bytes([OPEN, 0, 1]) + login_user + bytes([CREATE, 1, 0, 4, 0]),
        "digest": bytes([OPEN, 0, 1, DIGESTINIT, 0, DIGEST, 3]) + b"abc" + bytes([0, 0]),
        "close-mid-op": open_rw + login_user + gen + bytes([SIGNINIT, 1, 0, 1, CLOSE, 0]) +
        bytes([SIGN, 1, 0x41, 1, 0, 1]),
        "copy-relaxed": open_rw + login_user + gen + bytes([COPY, 0, 1, 0]),
    }


def main():
    for h, seeds in (("attrs", attrs_seeds()), ("mech", mech_seeds()),
                     ("calls", calls_seeds())):
        d = os.path.join(HERE, "corpus", h)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
