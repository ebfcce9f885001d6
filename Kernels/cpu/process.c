#include "zt_process.h"

#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

int zt_bind_to_parent(int signal, int expected_parent) {
#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0UL, 0UL, 0UL) != 0) return -1;
    // After the request: a parent that died before it has reparented this process already.
    return getppid() == (pid_t)expected_parent ? 0 : 1;
#else
    (void)signal; (void)expected_parent;
    return -1;
#endif
}
