// The backend registry: the one file outside kernels/cuda that knows whether CUDA was built.
#include <cstdio>

#include "cpu-backend.h"
#include "moerun/kernels/backend.h"

#ifdef MOERUN_HAVE_CUDA
#include "moerun/kernels/cuda-backend.h"
#endif

namespace moerun::kernels {

std::string_view status_name(Status s) {
    switch (s) {
        case Status::ok:
            return "ok";
        case Status::unsupported:
            return "unsupported";
        case Status::invalid_argument:
            return "invalid argument";
        case Status::device_error:
            return "device error";
    }
    return "unknown status";
}

std::vector<BackendProbe> probe_backends() {
    std::vector<BackendProbe> out;
#ifdef MOERUN_HAVE_CUDA
    {
        BackendProbe p{"cuda", true, false, {}};
        p.available = cuda::probe(&p.reason);
        out.push_back(p);
    }
#else
    out.push_back({"cuda", false, false, "not compiled in (built with MOERUN_CUDA=OFF or without nvcc)"});
#endif
    out.push_back({"cpu", true, true, make_cpu_backend()->device_info().name});
    return out;
}

std::unique_ptr<Backend> make_backend(std::string_view name, std::string *why) {
    if (name == "cpu") return make_cpu_backend();
    if (name == "cuda") {
#ifdef MOERUN_HAVE_CUDA
        std::string reason;
        if (!cuda::probe(&reason)) {
            if (why) *why = reason;
            return nullptr;
        }
        return cuda::make_backend();
#else
        if (why) *why = "the CUDA backend is not compiled into this build";
        return nullptr;
#endif
    }
    if (why) *why = "unknown backend '" + std::string(name) + "' (known: cpu, cuda)";
    return nullptr;
}

}  // namespace moerun::kernels
