//! Every parser of the domain over arbitrary text: no panic, a clear and
//! bounded error or a value that prints back to what was read.

use super::arbitrary::{self, hostile_text, megabyte_text};
use super::*;
use proptest::prelude::*;

/// Starts the inputs of [`parse_errors_never_echo_their_input`]; no
/// message has it unless it quotes what it was given.
const ECHO_MARK: char = '⟦';

/// An error is short whatever the input's length, printable and never
/// echoes its input (see [`ParseError`]).
fn check_error(error: &ParseError) -> Result<(), TestCaseError> {
    prop_assert!(!error.0.is_empty());
    prop_assert!(error.0.chars().count() <= 400, "{}", error.0);
    prop_assert!(!error.0.chars().any(char::is_control), "{:?}", error.0);
    prop_assert!(!error.0.contains(ECHO_MARK), "{}", error.0);
    Ok(())
}

fn check<T>(
    parsed: Result<T, ParseError>,
    round_trip: impl FnOnce(T) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    match parsed {
        Ok(value) => round_trip(value),
        Err(error) => check_error(&error),
    }
}

fn all_parsers(input: &str) -> Result<(), TestCaseError> {
    check(RunId::parse(input), |id| {
        prop_assert_eq!(RunId::parse(&id.to_string()).unwrap(), id);
        Ok(())
    })?;
    check(TenantSlug::parse(input), |slug| {
        prop_assert_eq!(slug.as_str(), input);
        Ok(())
    })?;
    check(ReasonCode::parse(input), |code| {
        prop_assert_eq!(code.as_str(), input);
        Ok(())
    })?;
    check(RunStatus::parse(input), |status| {
        prop_assert_eq!(status.as_str(), input);
        Ok(())
    })?;
    check(StatusBucket::parse(input), |bucket| {
        prop_assert_eq!(bucket.as_str(), input);
        Ok(())
    })?;
    check(OperationKind::parse(input), |kind| {
        prop_assert_eq!(kind.code(), input);
        Ok(())
    })?;
    let (resource, action) = input.split_once('.').unwrap_or((input, input));
    check(OperationKind::from_parts(resource, action), |kind| {
        prop_assert_eq!((kind.resource(), kind.action()), (resource, action));
        Ok(())
    })?;
    check(Role::parse(input), |role| {
        prop_assert_eq!(role.as_str(), input);
        Ok(())
    })?;
    check(FindingStatus::parse(input), |status| {
        prop_assert_eq!(status.as_str(), input);
        Ok(())
    })?;
    check(FindingType::parse(input), |kind| {
        prop_assert_eq!(kind.as_str(), input);
        Ok(())
    })?;
    check(ChangeKind::parse(input), |kind| {
        prop_assert_eq!(kind.as_str(), input);
        Ok(())
    })?;
    check(NotificationKind::parse(input), |kind| {
        prop_assert_eq!(kind.as_str(), input);
        Ok(())
    })?;
    check(Cursor::parse(input), |cursor| {
        prop_assert_eq!(Cursor::parse(&cursor.to_string()).unwrap(), cursor);
        Ok(())
    })?;
    if let Some(day) = Timestamp::start_of_day(input) {
        prop_assert!(day
            .to_rfc3339()
            .starts_with(input.get(..4).unwrap_or_default()));
        prop_assert_eq!(Timestamp::start_of_day(&day.to_rfc3339()[..10]), Some(day));
    }
    #[cfg(feature = "ssr")]
    check(Timestamp::parse(input), |at| {
        prop_assert_eq!(
            Timestamp::parse(&at.to_rfc3339())
                .unwrap()
                .0
                .div_euclid(1_000_000),
            at.0.div_euclid(1_000_000)
        );
        Ok(())
    })?;
    Ok(())
}

/// Undoes [`encode_component`].
fn decode_component(encoded: &str) -> Vec<u8> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::new();
    let mut k = 0;
    while k < bytes.len() {
        if bytes[k] == b'%' {
            out.push(u8::from_str_radix(&encoded[k + 1..k + 3], 16).unwrap());
            k += 3;
        } else {
            out.push(bytes[k]);
            k += 1;
        }
    }
    out
}

proptest! {
    #![proptest_config(arbitrary::config())]

    #[test]
    fn parsers_answer_a_value_or_a_clear_error(input in hostile_text()) {
        all_parsers(&input)?;
    }

    #[test]
    fn parse_errors_never_echo_their_input(input in hostile_text()) {
        all_parsers(&format!("{ECHO_MARK}{input}"))?;
    }

    #[test]
    fn parsers_round_trip_what_they_print(
        id in any::<u128>(),
        at in any::<i64>(),
        days in -1_000_000i64..3_000_000,
    ) {
        all_parsers(&RunId(uuid::Uuid::from_u128(id)).to_string())?;
        all_parsers(&Cursor { at: Timestamp(at), id: uuid::Uuid::from_u128(id) }.to_string())?;
        let stamp = Timestamp(days * 86_400_000_000);
        all_parsers(&stamp.to_rfc3339())?;
        all_parsers(stamp.to_rfc3339().get(..10).unwrap_or_default())?;
        prop_assert!(!Timestamp(at).short_utc().is_empty());
    }

    #[test]
    fn components_encode_to_url_safe_ascii_and_back(input in hostile_text()) {
        let encoded = encode_component(&input);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        prop_assert_eq!(decode_component(&encoded), input.as_bytes());
        let value = Some(input.clone());
        let query = query_string(&[("q", &value), ("n", &None)]);
        prop_assert!(query.is_empty() == input.is_empty());
        if !input.is_empty() {
            prop_assert_eq!(query, format!("?q={encoded}"));
        }
    }
}

proptest! {
    #![proptest_config(arbitrary::config_large())]

    #[test]
    fn parsers_take_megabytes(input in megabyte_text()) {
        all_parsers(&input)?;
        prop_assert_eq!(decode_component(&encode_component(&input)), input.as_bytes());
    }
}
