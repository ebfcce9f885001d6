// swift-tools-version:6.1
// ZOTune: zeroth-order fine-tuning of language models, forward passes only.
import PackageDescription

let package = Package(
    name: "ZOTune",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "zotune", targets: ["zotune"]),
        .executable(name: "zotune-fuzz", targets: ["zotune-fuzz"]),
        .library(name: "ZOTuneBackend", targets: ["ZOTuneBackend"]),
        .library(name: "ZOTuneModels", targets: ["ZOTuneModels"]),
        .library(name: "ZOTuneTraining", targets: ["ZOTuneTraining"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Layer 0: hand-written kernels. C for the CPU (OpenBLAS for GEMM), the shared Philox
        // header, and the run-time loader of the CUDA library (built separately by Kernels/build.sh).
        .target(
            name: "ZOTuneKernels",
            path: "Kernels",
            exclude: ["cuda"],
            sources: ["cpu"],
            publicHeadersPath: "include",
            cSettings: [
                .define("_GNU_SOURCE"),
            ],
            linkerSettings: [
                .linkedLibrary("openblas"),
                .linkedLibrary("dl"),
                .linkedLibrary("pthread"),
                .linkedLibrary("m"),
            ]
        ),
        // Layer 1: tensors, device buffers, the memory ledger, backends and device choice.
        .target(
            name: "ZOTuneBackend",
            dependencies: ["ZOTuneKernels"]
        ),
        // Layer 2: checkpoint formats (safetensors, GGUF), tokenizers, architectures.
        .target(
            name: "ZOTuneModels",
            dependencies: ["ZOTuneBackend", "ZOTuneKernels"]
        ),
        // Layer 3: tasks and prompts, trainable sets, ZO estimators and optimizers, schedule, trajectories.
        .target(
            name: "ZOTuneTraining",
            dependencies: ["ZOTuneModels", "ZOTuneBackend", "ZOTuneKernels"]
        ),
        // The command-line tool.
        .executableTarget(
            name: "zotune",
            dependencies: [
                "ZOTuneBackend",
                "ZOTuneModels",
                "ZOTuneTraining",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fuzzing every parser of untrusted input: the targets and a seeded mutation harness
        // (library, so the tests replay regressions through it), and its driver, which runs under
        // libFuzzer when built with -sanitize=fuzzer (bench/fuzz.sh).
        .target(name: "ZOTuneFuzzing", dependencies: ["ZOTuneTraining", "ZOTuneModels", "ZOTuneKernels"]),
        .executableTarget(name: "zotune-fuzz", dependencies: ["ZOTuneFuzzing"]),
        .testTarget(name: "FuzzTests", dependencies: ["ZOTuneFuzzing"], path: "Tests/Fuzz", exclude: ["regressions", "corpus"]),
        .testTarget(name: "KernelTests", dependencies: ["ZOTuneKernels"]),
        .testTarget(name: "BackendTests", dependencies: ["ZOTuneBackend", "ZOTuneKernels"]),
        .testTarget(name: "ModelTests", dependencies: ["ZOTuneModels", "ZOTuneBackend", "ZOTuneKernels"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "TrainingTests", dependencies: ["ZOTuneTraining", "ZOTuneModels", "ZOTuneBackend", "ZOTuneKernels"],
                    exclude: ["Fixtures"]),
    ]
)
