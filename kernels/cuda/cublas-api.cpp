// Loads cuBLAS with dlopen (cublas-api.h): the versioned name this build was compiled against,
// first through the loader's search path, then from the toolkit's library folder of the build.
#include "cublas-api.h"

#include <dlfcn.h>

#include <string>

namespace moerun::kernels::cuda {

namespace {

struct Loaded {
    CublasApi api{};
    bool ok = false;
    std::string why;
};

template <class F>
bool bind(void *lib, const char *name, F &out, std::string &why) {
    out = reinterpret_cast<F>(dlsym(lib, name));
    if (out == nullptr) why = std::string("libcublas has no ") + name;
    return out != nullptr;
}

#ifdef MOERUN_CUDA_EMULATED
// The CUDA emulator's cuBLAS (tests/cuda-emu) is linked in: nothing to load.
Loaded load() {
    Loaded l;
    l.api = {&cublasCreate_v2,       &cublasDestroy_v2, &cublasSetStream_v2,
             &cublasSetWorkspace_v2, &cublasSgemm_v2,   &cublasGetStatusString};
    l.ok = true;
    return l;
}
#else
Loaded load() {
    Loaded l;
    const std::string so = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    void *lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
#ifdef MOERUN_CUDA_LIBRARY_DIR
    if (lib == nullptr)
        lib = dlopen((std::string(MOERUN_CUDA_LIBRARY_DIR) + "/" + so).c_str(), RTLD_NOW | RTLD_LOCAL);
#endif
    if (lib == nullptr) {
        const char *e = dlerror();
        l.why = "cannot load " + so + (e ? std::string(": ") + e : std::string());
        return l;
    }
    CublasApi &a = l.api;
    l.ok = bind(lib, "cublasCreate_v2", a.create, l.why) && bind(lib, "cublasDestroy_v2", a.destroy, l.why) &&
           bind(lib, "cublasSetStream_v2", a.set_stream, l.why) &&
           bind(lib, "cublasSetWorkspace_v2", a.set_workspace, l.why) &&
           bind(lib, "cublasSgemm_v2", a.sgemm, l.why) &&
           bind(lib, "cublasGetStatusString", a.status_string, l.why);
    return l;  // the library stays loaded for the process
}
#endif

}  // namespace

const CublasApi *cublas_api(std::string *why) {
    static const Loaded loaded = load();
    if (!loaded.ok && why) *why = loaded.why;
    return loaded.ok ? &loaded.api : nullptr;
}

}  // namespace moerun::kernels::cuda
