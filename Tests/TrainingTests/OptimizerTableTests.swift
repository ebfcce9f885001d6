import Foundation
import XCTest
import ZOTuneBackend
@testable import ZOTuneTraining

/// The optimizer table (OptimizerSpec.all): run headers of earlier builds read back byte for byte,
/// every row's flags name real keys, and flags typed on the command line go on top of a base
/// (a `--config` file's optimizer) without touching the rest.
final class OptimizerTableTests: XCTestCase {
    /// The optimizer objects of run headers written by the build before the table (the enum with
    /// its switches, 8e95682), `zotune train` with the flags beside each (sorted keys, as headers).
    static let earlierHeaders: [(flags: String, json: String)] = [
        ("--eps 1e-2", #"{"directions":1,"eps":0.01,"name":"mezo","one_sided":false,"weight_decay":0}"#),
        ("--one-sided", #"{"directions":1,"eps":0.001,"name":"mezo","one_sided":true,"weight_decay":0}"#),
        ("--optimizer zo-sgd-mmt --momentum 0.8 --weight-decay 0.1", #"{"eps":0.001,"momentum":0.8,"name":"zo-sgd-mmt","weight_decay":0.1}"#),
        ("--optimizer zo-adam --beta1 0.8 --beta2 0.99 --adam-eps 1e-6",
         #"{"adam_eps":1e-06,"beta1":0.8,"beta2":0.99,"eps":0.001,"name":"zo-adam","weight_decay":0}"#),
        ("--optimizer zo-sign", #"{"eps":0.001,"name":"zo-sign","weight_decay":0}"#),
        ("--optimizer zo-cons", #"{"eps":0.001,"name":"zo-cons"}"#),
        ("--optimizer hizoo --hessian-smoothing 1e-3", #"{"eps":0.001,"hessian_smoothing":0.001,"name":"hizoo","weight_decay":0}"#),
        ("--optimizer zo-muon --ns-steps 5 --ns-polynomial cubic --other-lr-ratio 0.5 --momentum-placement before-ns --tall-scale",
         #"{"eps":0.001,"momentum":0.9,"momentum_placement":"before-ns","name":"zo-muon","ns_polynomial":"cubic","ns_steps":5,"other_lr_ratio":0.5,"tall_scale":true}"#),
        ("--optimizer jaguar-sign --jaguar-variant released --momentum 0.5 --smoothing",
         #"{"beta":0.01,"block_fraction":0.1,"eps":0.001,"momentum":0.5,"name":"jaguar-sign","smoothing":true,"variant":"released"}"#),
        ("--optimizer jaguar-muon --orthogonalize-every 2 --block-fraction 0.3",
         #"{"beta":0.01,"block_fraction":0.3,"eps":0.001,"name":"jaguar-muon","ns_polynomial":"cubic","ns_steps":10,"orthogonalize_every":2,"other_lr_ratio":0.01}"#),
        ("--optimizer dizo --dizo-interval 2 --dizo-iterations 2 --dizo-eps 0.05 --dizo-step 1.5 --dizo-clip 0.3 --dizo-layers q,v",
         #"{"clip":0.3,"eps":0.001,"interval":2,"iterations":2,"layers":["q","v"],"name":"dizo","projection_eps":0.05,"projection_step":1.5,"weight_decay":0}"#),
        ("--optimizer zoop --zoop-layers q,v --zoop-blocks 0",
         #"{"adam_eps":1e-08,"beta1":0.9,"beta2":0.999,"blocks":[0],"eps":0.001,"layers":["q","v"],"name":"zoop","update":"sgd"}"#),
    ]

    func encoded(_ c: OptimizerConfig) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try e.encode(c), as: UTF8.self)
    }

    /// Each earlier header decodes through the table and encodes to the same bytes; the same
    /// flags resolved today give the same configuration.
    func testEarlierHeadersReadBackByteForByte() throws {
        for (flags, json) in Self.earlierHeaders {
            let c = try JSONDecoder().decode(OptimizerConfig.self, from: Data(json.utf8))
            XCTAssertEqual(try encoded(c), json, flags)
            XCTAssertEqual(try resolve(flags), c, flags)
        }
    }

    /// The command line's flags as the CLI hands them over (typed values).
    func resolve(_ flags: String, base: OptimizerConfig? = nil) throws -> OptimizerConfig {
        var words = flags.split(separator: " ").map(String.init)[...]
        var kind: OptimizerKind?, eps: Float?, given: [(flag: String, value: Any)] = []
        let switches: Set = ["--one-sided", "--tall-scale", "--smoothing"]
        while let f = words.popFirst() {
            if switches.contains(f) { given.append((f, true)); continue }
            let v = try XCTUnwrap(words.popFirst(), f)
            switch f {
            case "--optimizer": kind = try XCTUnwrap(OptimizerKind(rawValue: v))
            case "--eps": eps = Float(v)
            case "--directions", "--ns-steps", "--orthogonalize-every", "--dizo-interval", "--dizo-iterations": given.append((f, Int(v)!))
            case "--block-fraction": given.append((f, Double(v)!))
            case "--ns-polynomial": given.append((f, NewtonSchulz(rawValue: v)!))
            case "--momentum-placement": given.append((f, MomentumPlacement(rawValue: v)!))
            case "--jaguar-variant": given.append((f, JaguarVariant(rawValue: v)!))
            case "--zoop-update": given.append((f, ZoopOptions.Update(rawValue: v)!))
            case "--dizo-layers", "--zoop-layers": given.append((f, v.split(separator: ",").map(String.init)))
            case "--zoop-blocks": given.append((f, v.split(separator: ",").map { Int($0)! }))
            default: given.append((f, Float(v)!))
            }
        }
        return try OptimizerConfig.resolve(kind: kind, base: base, eps: eps, given: given, peft: nil)
    }

    /// Every row: a unique name that parses back, defaults that validate and round-trip, and
    /// flags whose keys are keys of its header (a typo would misname errors and `--config` keys).
    func testEveryRowIsConsistent() throws {
        XCTAssertEqual(Set(OptimizerKind.allCases.map(\.rawValue)).count, OptimizerSpec.all.count)
        for spec in OptimizerSpec.all {
            let name = spec.kind.rawValue
            XCTAssertEqual(OptimizerKind(rawValue: name), spec.kind)
            let c = OptimizerConfig.defaults(spec.kind, eps: 0.01)
            XCTAssertEqual(c.kind, spec.kind)
            XCTAssertNoThrow(try c.validate(), name)
            let json = try encoded(c)
            XCTAssertEqual(try JSONDecoder().decode(OptimizerConfig.self, from: Data(json.utf8)), c, name)
            let keys = Set(c.fields.keys)
            for f in spec.flags {
                XCTAssertTrue(keys.contains(f.key) || (f.key == "blocks" && name == "zoop"), "\(name): \(f.flag) sets \(f.key), not a header key (\(keys.sorted()))")
            }
        }
        XCTAssertNil(OptimizerKind(rawValue: "nope"))
        XCTAssertThrowsError(try JSONDecoder().decode(OptimizerConfig.self, from: Data(#"{"name":"nope","eps":0.1}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("unknown optimizer \"nope\""), "\($0)")
        }
    }

    /// A base's values stay unless a flag is typed; a new kind starts from its defaults with the
    /// base's ε; without a base the flags alone decide (the CLI of before).
    func testTypedFlagsGoOnTopOfABase() throws {
        let base = OptimizerConfig.zoAdam(ZOAdamOptions(eps: 0.02, beta1: 0.8, weightDecay: 0.1))
        XCTAssertEqual(try resolve("--beta2 0.99", base: base), .zoAdam(ZOAdamOptions(eps: 0.02, beta1: 0.8, beta2: 0.99, weightDecay: 0.1)))
        XCTAssertEqual(try resolve("--eps 0.5", base: base), .zoAdam(ZOAdamOptions(eps: 0.5, beta1: 0.8, weightDecay: 0.1)))
        XCTAssertEqual(try resolve("--optimizer mezo", base: base), .mezo(MeZOOptions(eps: 0.02)))
        XCTAssertEqual(try resolve(""), .mezo(MeZOOptions()))
        XCTAssertEqual(try OptimizerConfig.resolve(kind: .dizo, base: nil, eps: nil, given: [], peft: .lora(LoRAOptions())),
                       .dizo(DiZOOptions(eps: 1e-2, layers: LoRAOptions().targets)))
    }

    /// Refusals name the flag (the CLI's message) and the key (a `--config` file's).
    func testRefusalsNameFlagAndKey() throws {
        for (flags, message, key) in [("--optimizer zo-adam --momentum 0.5", "--momentum is an option of --optimizer zo-sgd-mmt/zo-muon/jaguar-sign/lozo, not zo-adam", ""),
                                      ("--optimizer zo-cons --weight-decay 0.1", "--weight-decay is not available with zo-cons (its moves are pure ±ηgz)", ""),
                                      ("--optimizer dizo --dizo-clip 1", "--dizo-clip must be in (0, 1)", "clip"),
                                      ("--optimizer jaguar-muon --block-fraction 1.5", "--block-fraction must be in (0, 1] (got 1.5)", "block_fraction"),
                                      ("--optimizer jaguar-sign --smoothing", "--momentum and --smoothing belong to --jaguar-variant released", "smoothing"),
                                      ("--optimizer zoop --beta2 0.5", "--beta1, --beta2 and --adam-eps belong to --zoop-update adam", "beta2"),
                                      ("--directions 0", "--directions must be at least 1", "directions"),
                                      ("--eps 0", "--eps must be positive (got 0.0)", "eps")] {
            XCTAssertThrowsError(try resolve(flags)) { e in
                let e = e as? OptimizerOptionError
                XCTAssertEqual(e?.message, message, flags)
                XCTAssertEqual(e?.key, key, flags)
            }
        }
        // A 0 where the optimizer has no weight decay changes nothing (accepted, as before).
        XCTAssertEqual(try resolve("--optimizer zo-muon --weight-decay 0"), .zoMuon(ZOMuonOptions()))
        // A value of the wrong type for the field: named, never a crash.
        XCTAssertThrowsError(try OptimizerConfig.resolve(kind: .mezo, base: nil, eps: nil, given: [("--directions", Float(2))], peft: nil)) {
            XCTAssertTrue("\($0)".hasPrefix("--directions: a value of type Float"), "\($0)")
        }
        // Zoop trains its own layers of the base.
        XCTAssertThrowsError(try OptimizerConfig.resolve(kind: .zoop, base: nil, eps: nil, given: [], peft: .lora(LoRAOptions()))) {
            XCTAssertTrue("\($0)".contains("does not combine with --peft"), "\($0)")
        }
    }
}
