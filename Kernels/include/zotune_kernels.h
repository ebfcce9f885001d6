// Umbrella header of the ZOTuneKernels module.
#include "zt_dtype.h"
#include "zt_philox.h"
#include "zt_threads.h"
#include "zt_cpu.h"
#include "zt_backend_api.h"
#include "zt_quant.h"
