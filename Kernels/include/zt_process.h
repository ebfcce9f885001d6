// Process control the Swift side cannot reach: prctl is variadic, which Swift does not import.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Asks the kernel to send `signal` to this process when the thread that started it ends (its
// parent dying, SIGKILL included), then checks that the parent is still `expected_parent`: one
// that died before the request was made would never signal. Returns 0 when bound; 1 when the
// parent is gone already; -1 where the request is unsupported (not Linux) or refused (errno).
int zt_bind_to_parent(int signal, int expected_parent);

#ifdef __cplusplus
}
#endif
