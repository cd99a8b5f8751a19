// Prints RMSNorm's kernel plan (plugins/rms_norm/rms_norm_rule.h) for each problem read from stdin,
// for tests/test_rms_norm.py: the rule checked on the CPU, compiled with g++ (no CUDA).
// Input lines: multiprocessors maxBlocksPerSM sharedPerBlockOptin sharedPerSM ptxVersion
//              residentPipelineBlocks rows cols xBytes scaleBytes vectorized
// Output lines: family vec items threads rowsPerBlock rowsPerThread exact maxThreads evictFirst
//               stages stageBytes grid
#include "rms_norm_rule.h"

#include <iostream>

int main()
{
    using namespace plugkit::rms_norm;
    char const* names[] = {"streaming", "pipeline", "reread", "warp_rows", "block_rows"};
    DeviceProperties d{};
    int resident = 0;
    Shape s{};
    int vectorized = 0;
    while (std::cin >> d.multiprocessors >> d.maxBlocksPerMultiprocessor >> d.sharedMemoryPerBlockOptin
        >> d.sharedMemoryPerMultiprocessor >> d.ptxVersion >> resident >> s.rows >> s.cols >> s.xBytes >> s.scaleBytes
        >> vectorized)
    {
        s.vectorized = vectorized != 0;
        Plan const p = choosePlan(s, d, [resident](int, int, int) { return resident; });
        std::cout << names[static_cast<int>(p.family)] << ' ' << p.vec << ' ' << p.items << ' ' << p.threads << ' '
                  << p.rowsPerBlock << ' ' << p.rowsPerThread << ' ' << p.exact << ' ' << p.maxThreads << ' '
                  << p.evictFirst << ' ' << p.stages << ' ' << p.stageBytes << ' ' << p.grid << '\n';
    }
    return 0;
}
