import Foundation
import ZOTuneModels

/// The one line a person reads for an error that ends a command: the error's own description
/// where it has one (they name the file or option and the cause), Foundation's file errors as
/// "path: cause" — never an NSError dump.
func userMessage(for error: Error) -> String {
    if let line = FileError.describe(error) { return line }
    if let e = error as? CustomStringConvertible { return e.description }
    let ns = error as NSError
    return ns.localizedDescription
}
