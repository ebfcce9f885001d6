import Foundation
import XCTest
import ZOTuneTraining

/// Options typed on a command line over a run file, in the library (TrainingRun.overlaid): what
/// `zotune train --config FILE --opt V` does, without the command line.
final class RunOverlayTests: XCTestCase {
    func file() throws -> TrainingRun {
        try TrainingRun.decode(Data("""
        {"model": "m", "task": "sst2", "steps": 30, "batch-size": 4, "lr": 1e-3, "seed": 7,
         "peft": {"name": "lora", "rank": 4, "alpha": 8, "targets": ["q", "v"]},
         "optimizer": {"name": "zo-adam", "beta1": 0.8, "beta2": 0.95}}
        """.utf8))
    }

    /// Only the typed options change; a typed adapter field keeps the file's other fields; a
    /// typed optimizer option reaches the closure with the file's optimizer as its base.
    func testTypedOptionsReplaceOnlyTheirFields() throws {
        let file = try file()
        var flags = TrainingRun(model: "other", task: "rte")   // untyped values: must not leak in
        flags.steps = 5
        flags.lr = 2e-3
        flags.batchSize = 64
        flags.peft = .lora(LoRAOptions(rank: 2))               // alpha 16, targets q,v: defaults not typed
        var seenBase: OptimizerConfig?
        let run = try file.overlaid(by: flags, typed: ["--steps", "--lr", "--lora-rank", "--beta1", "--device"], source: "run.json") { base, peft in
            seenBase = base
            XCTAssertEqual(peft?.name, "lora")
            var o = base!.options(ZOAdamOptions.self)!
            o.beta1 = 0.5
            return .zoAdam(o)
        }
        XCTAssertEqual(run.steps, 5)
        XCTAssertEqual(run.lr, 2e-3)
        XCTAssertEqual(run.batchSize, 4)
        XCTAssertEqual(run.model, "m")
        XCTAssertEqual(run.task, "sst2")
        guard case .lora(let l)? = run.peft else { return XCTFail("the adapter was lost") }
        XCTAssertEqual(l.rank, 2)
        XCTAssertEqual(l.alpha, 8, "an untyped field of the adapter came from the command line's defaults")
        XCTAssertEqual(seenBase, file.optimizer)
        XCTAssertEqual(run.optimizer?.options(ZOAdamOptions.self)?.beta1, 0.5)
        XCTAssertEqual(run.optimizer?.options(ZOAdamOptions.self)?.beta2, 0.95)
    }

    /// No optimizer option typed: the file's optimizer as it is (the closure is not asked).
    func testUntypedOptimizerIsTheFiles() throws {
        let file = try file()
        let run = try file.overlaid(by: file, typed: ["--out"], source: "run.json") { _, _ in
            XCTFail("asked for an optimizer no option changed")
            return .defaults(.mezo)
        }
        XCTAssertEqual(run.optimizer, file.optimizer)
    }

    /// An option a run file does not hold, and a result out of range, are refused naming the option.
    func testRefusalsNameTheOption() throws {
        let file = try file()
        XCTAssertThrowsError(try file.overlaid(by: file, typed: ["--icl"], source: "run.json") { b, _ in b! }) { e in
            XCTAssertEqual("\(e)", "--icl cannot be combined with --config: give it in the run file")
        }
        var flags = file
        flags.steps = 0
        XCTAssertThrowsError(try file.overlaid(by: flags, typed: ["--steps"], source: "run.json") { b, _ in b! }) { e in
            XCTAssertTrue("\(e)".hasPrefix("--steps must be at least 1") && "\(e)".hasSuffix("(in run.json or on the command line)"), "\(e)")
        }
    }

    /// A typed --seed reseeds the file's block re-init (it is seeded by the run seed).
    func testTypedSeedReseedsTheBlockReinit() throws {
        var file = try file()
        file.peft = nil
        file.optimizer = .defaults(.mezo)
        file.blocks = BlockwiseOptions(level: .layer, schedule: .sequential, stepsPerBlock: 10, reinit: InitOptions(seed: 7))
        var flags = file
        flags.seed = 9
        let run = try file.overlaid(by: flags, typed: ["--seed"], source: "run.json") { b, _ in b! }
        XCTAssertEqual(run.blocks?.reinit?.seed, 9)
        XCTAssertEqual(run.blocks?.stepsPerBlock, 10)
    }
}
