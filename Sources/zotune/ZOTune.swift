import Foundation
import ArgumentParser
import ZOTuneBackend

@main
struct ZOTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zotune",
        abstract: "Zeroth-order (forward-only) fine-tuning of language models.",
        subcommands: [Train.self, Pretrain.self, Eval.self, Replay.self, Merge.self, MemoryCommand.self, Generate.self, Logits.self, Inspect.self, StreamCommand.self, Devices.self, MPICheck.self, Bench.self]
    )
}

/// Options every command that runs kernels shares.
struct DeviceOptions: ParsableArguments {
    @Option(help: "Where to run: auto (CUDA if a device is usable, else CPU), cpu or cuda. Default: $ZOTUNE_DEVICE or auto.")
    var device: String?

    @Option(help: "CPU kernel threads (default: all cores, or $ZOTUNE_NUM_THREADS).")
    var threads: Int?

    /// The chosen backend; prints auto's fallback notice to stderr unless `quiet`.
    func backend(quiet: Bool = false) throws -> KernelBackend {
        let request = try DeviceRequest.resolve(flag: device)
        let choice = try DeviceSelection.select(request, threads: threads)
        if let notice = choice.notice, !quiet { printError(notice) }
        return choice.backend
    }
}

func printError(_ line: String) {
    var stderr = StandardError()
    print(line, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandle.standardError.write(string.data(using: .utf8)!)
    }
}
