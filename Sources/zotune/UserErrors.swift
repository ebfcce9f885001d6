import Foundation
import ZOTuneModels

/// The one line a person reads for an error that ends a command: the error's own description
/// where it has one (they name the file or option and the cause), Foundation's file errors as
/// "path: cause" — never an NSError dump.
func userMessage(for error: Error) -> String {
    if let line = FileError.describe(error) { return line }
    // On Linux every error casts to CustomStringConvertible, so test for Foundation's class first:
    // an NSError's description is a dump, its localized description the sentence.
    if type(of: error) is NSError.Type { return (error as NSError).localizedDescription }
    return String(describing: error)
}
