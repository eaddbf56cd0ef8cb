// The emulated CUDA runtime (moerun-cuda-emu.h): this folder stands in for the toolkit's headers
// in a MOERUN_CUDA=EMULATE build.
#pragma once
#include "moerun-cuda-emu.h"
