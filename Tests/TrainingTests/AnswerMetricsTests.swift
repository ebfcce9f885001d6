import XCTest
import ZOTuneTraining

/// SQuAD answer normalisation, F1 and exact match against values worked out by hand from the
/// official evaluation script's definitions.
final class AnswerMetricsTests: XCTestCase {
    func testNormalization() {
        XCTAssertEqual(AnswerMetrics.normalize("The  Cat, sat!"), "cat sat")
        XCTAssertEqual(AnswerMetrics.normalize("an Apple a day"), "apple day")
        XCTAssertEqual(AnswerMetrics.normalize("  "), "")
    }

    func testF1AndExactMatch() {
        // pred {cat, sat}, gold {cat, sat, on}: P = 1, R = 2/3 → F1 = 0.8.
        XCTAssertEqual(AnswerMetrics.f1("the cat sat", ["a cat sat on"]), 0.8, accuracy: 1e-12)
        // The best gold answer counts.
        XCTAssertEqual(AnswerMetrics.f1("Denver Broncos", ["Carolina Panthers", "Denver Broncos"]), 1)
        XCTAssertEqual(AnswerMetrics.f1("Paris", ["London"]), 0)
        // Repeated tokens are matched once each: pred {a,b,b} vs gold {b}: P = 1/3, R = 1 → 0.5.
        XCTAssertEqual(AnswerMetrics.f1("x y y", ["y"]), 0.5, accuracy: 1e-12)
        XCTAssertEqual(AnswerMetrics.exactMatch("Paris.", ["paris"]), 1)
        XCTAssertEqual(AnswerMetrics.exactMatch("in Paris", ["paris"]), 0)
    }
}
