/*
 * OpenSSL error queue -> log and CK_RV for the software backend (style.md
 * §3.4: foreign codes stop at the backend boundary).
 */
#include "soft.h"
#include "swcrypto_int.h"

CK_RV ksp_soft_err(const char *what, CK_RV rv)
{
    return ksp_ossl_err("soft", what, rv);
}
