/*
 * The ksp11 command: CK_RV values to their names, for error messages
 * ("ksp11: login failed: CKR_PIN_INCORRECT (0x000000a0)").
 */
#include "cli.h"

#include "ksp11/ckr_names.h"

const char *ksp_ckr_name(CK_RV rv)
{
    for (size_t i = 0; i < sizeof(ksp_ckr_names) / sizeof(ksp_ckr_names[0]); i++) {
        if (ksp_ckr_names[i].rv == rv)
            return ksp_ckr_names[i].name;
    }
    if (rv >= CKR_VENDOR_DEFINED)
        return "CKR_VENDOR_DEFINED";
    return "unknown CKR code";
}
