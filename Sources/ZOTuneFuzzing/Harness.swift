import Foundation

/// What a fuzzing session of one target saw.
public struct FuzzReport: Sendable {
    public var target: String
    public var inputs = 0
    public var accepted = 0
    public var seconds = 0.0
    public var slowest = 0.0
    /// Inputs that took longer than the hang limit (saved under the work directory's hangs/).
    public var hangs = 0

    public init(target: String) { self.target = target }
}

/// Runs a target's seeds and then mutants of them, in a scratch directory. The input being read
/// is always the file `<work>/<fileName>`: when the process dies on one, that file is the crash
/// reproducer (bench/fuzz.sh files it under Tests/Fuzz/regressions/).
public final class FuzzHarness {
    public let target: FuzzTarget
    public let root: URL
    public let work: URL
    public let seeds: [[UInt8]]
    public var hangLimit = 1.0

    /// `root`: the package root (seed paths are relative to it); `work`: a scratch directory.
    public init(target: FuzzTarget, root: URL, work: URL) throws {
        self.target = target
        self.root = root
        self.work = work
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        seeds = try target.seeds.map { path in
            let url = root.appendingPathComponent(path)
            guard let d = FileManager.default.contents(atPath: url.path) else {
                throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: url.path])
            }
            return [UInt8](d)
        }
        // A sharded checkpoint's index is read next to its shards and config.
        if target.name == "safetensors-index" {
            let dir = root.appendingPathComponent("Tests/ModelTests/Fixtures/models/opt_sharded")
            for f in try FileManager.default.contentsOfDirectory(atPath: dir.path) where f != "model.safetensors.index.json" {
                let link = work.appendingPathComponent(f)
                if !FileManager.default.fileExists(atPath: link.path) {
                    try FileManager.default.createSymbolicLink(at: link, withDestinationURL: dir.appendingPathComponent(f))
                }
            }
        }
    }

    /// Runs one input, timing it; a slow one is kept under hangs/.
    @discardableResult
    public func run(_ input: [UInt8], report: inout FuzzReport) -> Bool {
        let start = Date()
        let ok = target.run(input, in: work)
        let dt = Date().timeIntervalSince(start)
        report.inputs += 1
        if ok { report.accepted += 1 }
        report.slowest = max(report.slowest, dt)
        if dt > hangLimit {
            report.hangs += 1
            let dir = work.appendingPathComponent("hangs")
            try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: dir.appendingPathComponent("\(target.name)-\(report.inputs)").path, contents: Data(input))
        }
        return ok
    }

    /// Every seed as it is (each must be accepted: a seed the reader refuses is a broken corpus),
    /// then `count` mutants.
    public func fuzz(count: Int, seed: UInt64, progress: ((FuzzReport) -> Void)? = nil) -> (report: FuzzReport, refusedSeeds: [String]) {
        var report = FuzzReport(target: target.name)
        let start = Date()
        var refused: [String] = []
        for (path, s) in zip(target.seeds, seeds) where !run(s, report: &report) {
            refused.append("\(path): \(target.explain(s, in: work) ?? "")")
        }
        var mutator = Mutator(seed: seed, maxSize: max(1 << 16, 2 * (seeds.map(\.count).max() ?? 0)))
        for i in 0..<count {
            let s = seeds[i % seeds.count]
            run(mutator.mutate(s, others: seeds), report: &report)
            if let progress, (i + 1) % 1000 == 0 {
                report.seconds = Date().timeIntervalSince(start)
                progress(report)
            }
        }
        report.seconds = Date().timeIntervalSince(start)
        return (report, refused)
    }
}
