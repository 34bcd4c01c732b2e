//! A helper for the conversions between generated and core types.

/// Converts between two enums whose unit variants have the same names.
macro_rules! unit_enum {
    ($from:ty => $to:ty { $($variant:ident),* $(,)? }) => {
        impl From<$from> for $to {
            fn from(value: $from) -> Self {
                type Source = $from;
                type Target = $to;
                match value {
                    $(Source::$variant => Target::$variant,)*
                }
            }
        }
    };
}
pub(crate) use unit_enum;
