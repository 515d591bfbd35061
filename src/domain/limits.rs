//! Size limits on what people write, shared by the form, the API and e-mail intake.

/// A deviation's title, in characters.
pub const TITLE_MAX: usize = 200;
/// A description, comment, decision or note, in characters.
pub const DESCRIPTION_MAX: usize = 20_000;
/// Short fields (names, sector, asset, category …), in characters.
pub const SHORT_MAX: usize = 200;
