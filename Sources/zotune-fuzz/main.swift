// zotune-fuzz: runs the fuzz targets of ZOTuneFuzzing.
//   zotune-fuzz list
//   zotune-fuzz run TARGET [--inputs N] [--seed S] [--root DIR] [--work DIR]   seeded mutation harness
//   zotune-fuzz replay TARGET FILE...                                          one input each (a crash kills the process)
//   zotune-fuzz seeds TARGET DIR                                               copy the target's seed files into DIR
// Built with `-sanitize=fuzzer,address -DZOTUNE_LIBFUZZER` (bench/fuzz.sh), `run` hands the
// target to libFuzzer instead: ZOTUNE_FUZZ_TARGET=NAME zotune-fuzz [libFuzzer flags] CORPUS...
import Foundation
import ZOTuneFuzzing

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("zotune-fuzz: \(message)\n".utf8))
    exit(2)
}

func option(_ args: [String], _ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

func scratch(_ args: [String], _ target: FuzzTarget) -> URL {
    URL(fileURLWithPath: option(args, "--work") ?? NSTemporaryDirectory() + "zotune-fuzz-\(target.name)-\(getpid())")
}

#if ZOTUNE_LIBFUZZER
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

nonisolated(unsafe) var libFuzzerHarness: FuzzHarness?
nonisolated(unsafe) var libFuzzerReport = FuzzReport(target: "")

if let name = ProcessInfo.processInfo.environment["ZOTUNE_FUZZ_TARGET"] {
    guard let target = fuzzTarget(named: name) else { fail("unknown target \(name)") }
    let root = URL(fileURLWithPath: ProcessInfo.processInfo.environment["ZOTUNE_ROOT"] ?? FileManager.default.currentDirectoryPath)
    do { libFuzzerHarness = try FuzzHarness(target: target, root: root, work: scratch([], target)) } catch { fail("\(error)") }
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(withUnsafeMutablePointer(to: &argv) { p in
        LLVMFuzzerRunDriver(&argc, p) { data, size in
            let bytes = size == 0 ? [] : [UInt8](UnsafeBufferPointer(start: data, count: size))
            libFuzzerHarness!.run(bytes, report: &libFuzzerReport)
            return 0
        }
    })
}
#endif

let args = Array(CommandLine.arguments.dropFirst())
switch args.first {
case "list":
    for t in fuzzTargets { print("\(t.name)\t\(t.fileName)\t\(t.seeds.count) seeds") }
case "run":
    guard args.count >= 2, let target = fuzzTarget(named: args[1]) else { fail("run TARGET: one of \(fuzzTargets.map(\.name).joined(separator: ", "))") }
    let count = Int(option(args, "--inputs") ?? "10000") ?? 10000
    let seed = UInt64(option(args, "--seed") ?? "1") ?? 1
    let root = URL(fileURLWithPath: option(args, "--root") ?? FileManager.default.currentDirectoryPath)
    let harness: FuzzHarness
    do { harness = try FuzzHarness(target: target, root: root, work: scratch(args, target)) } catch { fail("\(error)") }
    let (report, refused) = harness.fuzz(count: count, seed: seed) { r in
        FileHandle.standardError.write(Data(String(format: "\r%@: %d inputs, %.0f/s, slowest %.3f s", r.target, r.inputs, Double(r.inputs) / r.seconds, r.slowest).utf8))
    }
    FileHandle.standardError.write(Data("\n".utf8))
    if !refused.isEmpty { fail("\(target.name): seeds refused by their own reader: \(refused.joined(separator: ", "))") }
    let json: [String: Any] = ["target": report.target, "inputs": report.inputs, "accepted": report.accepted, "seconds": report.seconds,
                               "slowest_seconds": report.slowest, "hangs": report.hangs, "crashes": 0, "seed": seed]
    print(String(decoding: try! JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self))
    if report.hangs > 0 { exit(1) }
case "seeds":
    guard args.count == 3, let target = fuzzTarget(named: args[1]) else { fail("seeds TARGET DIR") }
    let dir = URL(fileURLWithPath: args[2])
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let root = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    for (i, path) in target.seeds.enumerated() {
        do {
            try FileManager.default.copyItem(at: root.appendingPathComponent(path), to: dir.appendingPathComponent("seed-\(i)-" + (path as NSString).lastPathComponent))
        } catch { fail("\(path): \(error.localizedDescription)") }
    }
case "replay":
    guard args.count >= 3, let target = fuzzTarget(named: args[1]) else { fail("replay TARGET FILE...") }
    let work = URL(fileURLWithPath: NSTemporaryDirectory() + "zotune-fuzz-replay-\(getpid())")
    let harness: FuzzHarness
    do { harness = try FuzzHarness(target: target, root: URL(fileURLWithPath: FileManager.default.currentDirectoryPath), work: work) } catch { fail("\(error)") }
    var report = FuzzReport(target: target.name)
    for path in args.dropFirst(2) {
        guard let d = FileManager.default.contents(atPath: path) else { fail("cannot read \(path)") }
        let ok = harness.run([UInt8](d), report: &report)
        print("\(path): \(ok ? "accepted" : "refused") in \(String(format: "%.3f", report.slowest)) s")
    }
default:
    fail("usage: zotune-fuzz list | run TARGET [--inputs N] [--seed S] [--root DIR] [--work DIR] | replay TARGET FILE... | seeds TARGET DIR")
}
