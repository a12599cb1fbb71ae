"""Why a station could not play an item: the list an operator picks from (code → words)."""

REASONS: dict[str, str] = {
    "mat_dien": "Mất điện",
    "hong_thiet_bi": "Hỏng thiết bị",
    "thoi_tiet": "Thời tiết xấu",
    "khong_nguoi_truc": "Không có người trực",
    "trung_lich": "Trùng lịch phát khác",
    "khac": "Khác",
}
OTHER = "khac"  # needs a note saying what
