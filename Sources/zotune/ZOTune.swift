import Foundation
import ArgumentParser
import ZOTuneBackend

@main
struct ZOTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zotune",
        abstract: "Zeroth-order (forward-only) fine-tuning of language models.",
        subcommands: [Train.self, SweepCommand.self, Pretrain.self, Eval.self, Replay.self, Merge.self, MemoryCommand.self, Generate.self, Logits.self, Inspect.self, StreamCommand.self, Devices.self, MPICheck.self, Bench.self]
    )

    /// Exit statuses (docs/cli.md): 0 done, 64 a bad command line or option value, 1 a failure
    /// while running; 128 + N after signal N (training saves its run first).
    static let usageFailure: Int32 = 64
    static let runFailure: Int32 = 1

    /// ArgumentParser's own entry point, with three changes: a negative number after an option is
    /// its value (`--lr -1`), and an error is one `Error:` line, with no usage block; a parse error
    /// adds a hint to the command's --help.
    static func main() {
        let arguments = negativeValuesJoined(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let e as ExitCode {
            Foundation.exit(e.rawValue)
        } catch let e as ValidationError {
            printError("Error: " + e.message)
            Foundation.exit(usageFailure)
        } catch where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            // Parse errors, and --help, --version and the help dump (which ArgumentParser raises
            // from parsing or from its built-in help command's run).
            if exitCode(for: error) == .success { exit(withError: error) }
            printError("Error: " + message(for: error))
            if !isValidationError(error) {
                printError("(see `\((["zotune"] + commandPath(arguments)).joined(separator: " ")) --help`)")
            }
            Foundation.exit(usageFailure)
        } catch {
            printError("Error: " + userMessage(for: error))
            Foundation.exit(runFailure)
        }
    }

    /// `--opt -1` → `--opt=-1` where `-1` reads as a number (-1e-3, -inf, -nan too): ArgumentParser
    /// otherwise reads `-1` as short options and reports a missing value. No command takes a short
    /// option or a negative positional, so after a flag the join only changes which error is
    /// reported; it needs no list of the options (building one costs a second in a debug build).
    static func negativeValuesJoined(_ arguments: [String]) -> [String] {
        func isNegativeNumber(_ s: String) -> Bool { s.hasPrefix("-") && Double(s) != nil }
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { out += arguments[i...]; break }
            if a.hasPrefix("--"), a.count > 2, !a.contains("="), i + 1 < arguments.count, isNegativeNumber(arguments[i + 1]) {
                out.append(a + "=" + arguments[i + 1])
                i += 2
            } else {
                out.append(a)
                i += 1
            }
        }
        return out
    }

    /// The subcommand names at the start of `arguments` (e.g. ["bench", "step"]).
    static func commandPath(_ arguments: [String]) -> [String] {
        var type: ParsableCommand.Type = ZOTune.self
        var path: [String] = []
        for a in arguments {
            guard let next = type.configuration.subcommands.first(where: { $0._commandName == a }) else { break }
            path.append(a)
            type = next
        }
        return path
    }

    /// A value a command's `validate()` refused (a one-line message is enough), as opposed to a
    /// command line ArgumentParser could not read (the hint to --help helps there).
    static func isValidationError(_ error: Error) -> Bool {
        guard let parserError = Mirror(reflecting: error).children.first(where: { $0.label == "parserError" })?.value else { return false }
        return Mirror(reflecting: parserError).children.first?.label == "userValidationError"
    }
}

/// Options every command that runs kernels shares.
struct DeviceOptions: ParsableArguments {
    @Option(help: "Where to run: auto (CUDA if a device is usable, else CPU), cpu or cuda. Default: $ZOTUNE_DEVICE or auto.")
    var device: String?

    @Option(help: "CPU kernel threads, 1 to 256 (default: all cores, or $ZOTUNE_NUM_THREADS).")
    var threads: Int?

    func validate() throws {
        // The kernel pool holds at most 256 threads (Kernels/cpu/threads.c).
        if let threads, !(1...256).contains(threads) { throw ValidationError("--threads must be in 1…256 (got \(threads))") }
    }

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
