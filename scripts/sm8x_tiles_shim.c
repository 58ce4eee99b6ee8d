// An LD_PRELOAD shim for one measurement (bench/vllm-vs-stock.md, "tile choice"): FA2's forward dispatch picks its
// tiles from the compute capability (hdim 96/128: 128x32 non-causal and 64x64 causal on sm_86/89, 128x64 on others),
// and a build holds both sets. Calls from the extension named by FAWHEELS_SHIM_EXT (a substring of its path) see
// compute capability 8.6, so one wheel on the H200 runs either set; every other caller sees the truth.
// Build: gcc -shared -fPIC -O2 -o shim.so scripts/sm8x_tiles_shim.c -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef int (*get_attribute_fn)(int *, int, int);
enum { kCapabilityMajor = 75, kCapabilityMinor = 76 };  // cudaDevAttrComputeCapabilityMajor / Minor

int cudaDeviceGetAttribute(int *value, int attr, int device) {
    static get_attribute_fn real = NULL;
    if (real == NULL) { real = (get_attribute_fn)dlsym(RTLD_NEXT, "cudaDeviceGetAttribute"); }
    int status = real(value, attr, device);
    const char *ext = getenv("FAWHEELS_SHIM_EXT");
    Dl_info caller;
    if (status == 0 && ext != NULL && (attr == kCapabilityMajor || attr == kCapabilityMinor)
        && dladdr(__builtin_return_address(0), &caller) && caller.dli_fname != NULL
        && strstr(caller.dli_fname, ext) != NULL) {
        *value = attr == kCapabilityMajor ? 8 : 6;
    }
    return status;
}
