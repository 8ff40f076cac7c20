"""Every word the console shows, in Vietnamese first and English; dates as dd/mm/yyyy, 24 h, site time zone."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Mapping
from zoneinfo import ZoneInfo

Lang = Literal["vi", "en"]

T: dict[str, tuple[str, str]] = {
    "app": ("Bảng điều khiển xã", "Commune console"),
    "login": ("Đăng nhập", "Log in"),
    "logout": ("Đăng xuất", "Log out"),
    "username": ("Tên đăng nhập", "User name"),
    "password": ("Mật khẩu", "Password"),
    "login_failed": ("Sai tên đăng nhập hoặc mật khẩu.", "Wrong user name or password."),
    "login_throttled": ("Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {s} giây.",
                        "Too many failed logins. Try again in {s} seconds."),
    "nav_bulletins": ("Bản tin", "Bulletins"),
    "nav_calendar": ("Lịch phát", "Calendar"),
    "nav_new": ("Soạn bản tin", "New bulletin"),
    "nav_emergency": ("Khẩn cấp", "Emergency"),
    "nav_asrun": ("Nhật ký phát", "As-run log"),
    "nav_lexicon": ("Cách đọc từ", "Pronunciation"),
    "lx_help": ("Từ viết tắt, tên địa danh, tên thôn bản mà máy đọc sai: ghi cách đọc đúng. Áp dụng cho mọi bản "
                "tin, cả hai giọng đọc. Tối đa {n} mục.",
                "Abbreviations and place or village names the radio says wrong: write how to say them. Used for "
                "every bulletin, both engines. At most {n} entries."),
    "lx_written": ("Chữ viết", "Written"),
    "lx_spoken": ("Đọc là", "Spoken as"),
    "lx_sample": ("Câu thử", "Sample sentence"),
    "lx_save": ("Lưu", "Save"),
    "lx_delete": ("Xóa", "Delete"),
    "lx_marked": ("Phần tô màu là chữ máy đọc khác với chữ viết (rê chuột để xem chữ gốc).",
                  "Highlighted: words read differently from how they are written (hover for the original)."),
    "lx_entries": ("Danh sách ({n} mục)", "Entries ({n})"),
    "lx_none": ("Chưa có mục nào.", "No entries yet."),
    "lx_version": ("Phiên bản {v}, sửa lần cuối bởi {by}", "Version {v}, last changed by {by}"),
    "lx_done_saved": ("Đã lưu cách đọc.", "Saved."),
    "lx_done_deleted": ("Đã xóa.", "Deleted."),
    "nav_reports": ("Báo cáo", "Reports"),
    "nav_status": ("Tình trạng", "Status"),
    "nav_tech": ("Kỹ thuật", "Technical"),
    "role_official": ("cán bộ", "official"),
    "role_technician": ("kỹ thuật viên", "technician"),
    "pr_normal": ("thường", "normal"),
    "pr_high": ("ưu tiên", "priority"),
    "pr_emergency": ("khẩn cấp", "emergency"),
    "oc_played": ("đã phát", "played"),
    "oc_failed": ("lỗi", "failed"),
    "oc_skipped": ("bỏ qua", "skipped"),
    "oc_interrupted": ("bị ngắt", "interrupted"),
    "title": ("Tiêu đề", "Title"),
    "text": ("Nội dung", "Text"),
    "source": ("Nguồn âm thanh", "Sound"),
    "source_text": ("Đọc văn bản (máy đọc)", "Read the text (speech)"),
    "source_audio": ("Tệp ghi âm (mp3, wav, m4a)", "Recording (mp3, wav, m4a)"),
    "recording": ("Tệp ghi âm", "Recording"),
    "recording_kept": ("Đang dùng tệp ghi âm đã tải lên ({d} giây).", "Using the uploaded recording ({d} s)."),
    "schedule": ("Lịch phát", "Schedule"),
    "sk_once": ("Một lần", "Once"),
    "sk_daily": ("Hằng ngày", "Every day"),
    "sk_weekdays": ("Các thứ trong tuần", "Days of the week"),
    "sk_cron": ("Biểu thức cron (chuyên gia)", "Cron (experts)"),
    "date": ("Ngày (dd/mm/yyyy)", "Date (dd/mm/yyyy)"),
    "time": ("Giờ (HH:MM)", "Time (HH:MM)"),
    "times": ("Các giờ phát (HH:MM, cách nhau bởi dấu phẩy)", "Times (HH:MM, comma separated)"),
    "weekdays": ("Thứ", "Weekdays"),
    "start_date": ("Từ ngày (dd/mm/yyyy)", "From (dd/mm/yyyy)"),
    "end_date": ("Đến ngày (dd/mm/yyyy)", "Until (dd/mm/yyyy)"),
    "cron": ("Biểu thức cron (5 trường)", "Cron expression (5 fields)"),
    "repeat": ("Số lần đọc mỗi lượt", "Plays per airing"),
    "gap": ("Nghỉ giữa các lần (giây)", "Gap between plays (s)"),
    "priority": ("Mức độ", "Priority"),
    "zones": ("Vùng loa", "Zones"),
    "zones_default": ("(không chọn = các vùng mặc định)", "(none ticked = default zones)"),
    "chime": ("Nhạc hiệu", "Chime"),
    "chime_before": ("trước", "before"),
    "chime_after": ("sau", "after"),
    "volume": ("Âm lượng (%)", "Volume (%)"),
    "preview": ("Nghe thử", "Preview"),
    "save": ("Lưu bản tin", "Save bulletin"),
    "spoken": ("Máy sẽ đọc", "Will be spoken as"),
    "preview_engine": ("Giọng đọc: {e}, dài {d} giây", "Engine: {e}, {d} s long"),
    "edit": ("Sửa", "Edit"),
    "play_now": ("Phát ngay", "Play now"),
    "cancel": ("Hủy bản tin", "Cancel"),
    "confirm_cancel": ("Hủy bản tin này?", "Cancel this bulletin?"),
    "confirm_play": ("Phát bản tin này ngay bây giờ?", "Play this bulletin now?"),
    "next_airings": ("Lượt phát tới", "Next airings"),
    "none_upcoming": ("không còn lượt nào", "none left"),
    "no_bulletins": ("Chưa có bản tin nào.", "No bulletins yet."),
    "no_broadcast": ("Chưa cấu hình phát thanh trên máy này.", "Broadcast is not configured on this box."),
    "saved": ("Đã lưu bản tin «{t}».", "Bulletin «{t}» saved."),
    "cancelled": ("Đã hủy bản tin «{t}».", "Bulletin «{t}» cancelled."),
    "playing": ("Đang phát bản tin «{t}» trên: {z}.", "Playing «{t}» on: {z}."),
    "refused": ("Không thực hiện được: {e}", "Refused: {e}"),
    "nav_automations": ("Cảnh báo tự động", "Automations"),
    "no_automations": ("Chưa cấu hình cảnh báo tự động trên máy này.", "Automations are not configured on this box."),
    "au_pending": ("Cảnh báo chờ duyệt", "Warnings waiting for a decision"),
    "au_none_pending": ("Không có cảnh báo nào chờ duyệt.", "No warning is waiting."),
    "au_left": ("Còn lại", "Time left"),
    "au_then_air": ("Hết giờ: tự động phát", "At the deadline: airs by itself"),
    "au_then_drop": ("Hết giờ: bỏ qua", "At the deadline: dropped"),
    "au_why": ("Lý do", "Why"),
    "au_confirm": ("Phát ngay", "Air it now"),
    "au_confirm_q": ("Phát cảnh báo này trên loa ngay bây giờ?", "Air this warning on the loudspeakers now?"),
    "au_cancel": ("Không phát", "Do not air"),
    "au_cancel_q": ("Không phát cảnh báo này?", "Drop this warning?"),
    "au_rules": ("Quy tắc", "Rules"),
    "au_rule": ("Quy tắc", "Rule"),
    "au_trigger": ("Khi nào", "Trigger"),
    "au_state": ("Trạng thái", "State"),
    "au_on": ("đang bật", "on"),
    "au_off": ("đang tắt", "off"),
    "au_last": ("Lần gần nhất", "Last fired"),
    "au_never": ("chưa lần nào", "never"),
    "au_enable": ("Bật", "Enable"),
    "au_disable": ("Tắt", "Disable"),
    "au_done_confirm": ("Đã duyệt: cảnh báo đang được phát.", "Confirmed: the warning is going on air."),
    "au_done_cancel": ("Đã hủy cảnh báo.", "The warning was dropped."),
    "au_done_enable": ("Đã bật quy tắc.", "Rule enabled."),
    "au_done_disable": ("Đã tắt quy tắc.", "Rule disabled."),
    "form_errors": ("Vui lòng sửa các lỗi được đánh dấu bên dưới.", "Please fix the marked fields."),
    "e_required": ("Không được để trống.", "Required."),
    "e_too_long": ("Quá dài: {n} ký tự, tối đa {m}.", "Too long: {n} characters, at most {m}."),
    "e_date": ("Ngày không hợp lệ, cần dạng dd/mm/yyyy.", "Not a date; write dd/mm/yyyy."),
    "e_time": ("Giờ không hợp lệ, cần dạng HH:MM (24 giờ).", "Not a time; write HH:MM (24 h)."),
    "e_past": ("Thời điểm này đã qua.", "That time has passed."),
    "e_end_before": ("Ngày kết thúc trước ngày bắt đầu.", "Ends before it starts."),
    "e_weekdays": ("Chọn ít nhất một thứ.", "Tick at least one day."),
    "e_cron": ("Biểu thức cron không hợp lệ (cần 5 trường).", "Not a valid 5-field cron expression."),
    "e_number": ("Cần một số từ {a} đến {b}.", "A number from {a} to {b}."),
    "e_choice": ("Lựa chọn không hợp lệ.", "Not a valid choice."),
    "e_zone": ("Vùng loa không tồn tại.", "Unknown zone."),
    "e_file_type": ("Chỉ nhận tệp mp3, wav hoặc m4a.", "Only mp3, wav or m4a files."),
    "e_file_size": ("Tệp quá lớn (tối đa {m} MB).", "File too large (at most {m} MB)."),
    "e_file_bad": ("Không đọc được tệp âm thanh này.", "This audio file cannot be read."),
    "e_file_long": ("Bản ghi quá dài (tối đa {m} giây).", "Recording too long (at most {m} s)."),
    "e_file_missing": ("Hãy chọn tệp ghi âm.", "Choose a recording."),
    "e_speak": ("Không đọc được nội dung: {e}", "Cannot speak the text: {e}"),
    "e_nothing": ("Nội dung không có chữ nào để đọc.", "The text has nothing to speak."),
    "e_confirm": ("Hãy đánh dấu ô xác nhận.", "Tick the confirmation box."),
    "e_confirm_stale": ("Xác nhận không còn hiệu lực (đã dùng, đã hết hạn hoặc nội dung đã thay đổi). "
                        "Hãy kiểm tra lại nội dung và xác nhận lần nữa.",
                        "This confirmation is no longer valid (used, expired or the content changed). "
                        "Check the content and confirm again."),
    "csrf": ("Phiên làm việc không hợp lệ hoặc đã hết hạn. Vui lòng tải lại trang.",
             "Invalid or expired form. Reload the page."),
    "forbidden": ("Bạn không có quyền mở trang này.", "You may not open this page."),
    "not_found": ("Không tìm thấy trang.", "Page not found."),
    "too_large": ("Dữ liệu gửi lên quá lớn.", "Request too large."),
    "calendar_title": ("Lịch phát 7 ngày tới", "The next 7 days"),
    "nothing_day": ("Không có lượt phát.", "Nothing airs."),
    "em_title": ("Phát thông báo khẩn cấp", "Emergency announcement"),
    "em_help": ("Bản tin khẩn cấp được phát ngay, cả trong giờ yên tĩnh, và ngắt bản tin đang phát.",
                "An emergency airs at once, also in quiet hours, and interrupts what is on air."),
    "em_next": ("Tiếp tục", "Continue"),
    "em_confirm_title": ("Xác nhận phát khẩn cấp", "Confirm the emergency"),
    "em_confirm_box": ("Tôi xác nhận phát thông báo khẩn cấp này ngay bây giờ.",
                       "I confirm: air this emergency announcement now."),
    "em_air": ("PHÁT KHẨN CẤP", "AIR NOW"),
    "em_back": ("Quay lại", "Back"),
    "from": ("Từ ngày", "From"),
    "to": ("Đến ngày", "To"),
    "bulletin": ("Bản tin", "Bulletin"),
    "zone": ("Vùng", "Zone"),
    "outcome": ("Kết quả", "Outcome"),
    "all": ("tất cả", "all"),
    "filter": ("Lọc", "Filter"),
    "csv": ("Tải CSV", "Download CSV"),
    "scheduled": ("Giờ hẹn", "Scheduled"),
    "started": ("Bắt đầu", "Started"),
    "lateness": ("Trễ (ms)", "Late (ms)"),
    "reason": ("Ghi chú", "Note"),
    "rows": ("{n} bản ghi", "{n} records"),
    "prev": ("Trang trước", "Previous"),
    "next": ("Trang sau", "Next"),
    "month": ("Tháng (mm/yyyy)", "Month (mm/yyyy)"),
    "report_title": ("Báo cáo phát thanh tháng {m}", "Broadcast report for {m}"),
    "planned": ("Theo lịch", "Planned"),
    "minutes": ("Phút phát", "Minutes on air"),
    "total": ("Tổng", "Total"),
    "print": ("In báo cáo", "Print"),
    "show": ("Xem", "Show"),
    "drivers": ("Các bộ phận", "Drivers"),
    "state": ("Trạng thái", "State"),
    "restarts": ("Khởi động lại", "Restarts"),
    "uplink": ("Kết nối trung tâm", "COC uplink"),
    "link": ("Đường mạng đang dùng", "WAN link in use"),
    "failovers": ("Chuyển đường mạng (1 giờ qua)", "Failovers (last hour)"),
    "spool": ("Hàng đợi", "Spool"),
    "depth": ("đang chờ", "waiting"),
    "dropped": ("bị bỏ", "dropped"),
    "cameras": ("Camera", "Cameras"),
    "online": ("trực tuyến", "online"),
    "offline": ("mất kết nối", "offline"),
    "sensors": ("Cảm biến", "Sensors"),
    "alarms": ("Cảnh báo đang có", "Active alarms"),
    "no_alarms": ("Không có cảnh báo.", "No alarms."),
    "events": ("Sự kiện gần đây", "Recent events"),
    "more": ("Xem thêm {n}", "{n} more"),
    "driver": ("Bộ phận", "Driver"),
    "metered": ("tính cước theo dung lượng", "metered"),
    "wan_link": ("Đường mạng", "WAN link"),
    "why": ("Lý do", "Reason"),
    "link_up": ("hoạt động", "up"), "link_down": ("mất kết nối", "down"), "link_unknown": ("đang kiểm tra", "checking"),
    "in_use": ("đang dùng", "in use"),
    "share": ("chia tải", "share"), "standby": ("dự phòng", "standby"),
    "budget_daily": ("{used}/{total} MB/ngày ({pct}%)", "{used}/{total} MB/day ({pct}%)"),
    "budget_monthly": ("{used}/{total} MB ({pct}%)", "{used}/{total} MB ({pct}%)"),
    "budget_used": ("{pct}% dung lượng", "{pct}% of data"),
    "budget_since": ("chu kỳ cước từ {since}", "billing cycle since {since}"),
    "budget_held": ("hoãn tải lớn", "bulk held"),
    "ev_balance_changed": ("thay đổi nhóm chia tải", "balance set changed"),
    "ev_data_budget": ("đạt ngưỡng dung lượng", "data budget threshold"),
    "ev_failover": ("chuyển sang đường dự phòng", "failover"), "ev_failback": ("trở lại đường chính", "failback"),
    "ev_link_down": ("mất kết nối", "link down"), "ev_link_up": ("có kết nối lại", "link up"),
    "ev_all_links_down": ("mất tất cả đường mạng", "all links down"),
    "cam_events": ("{n} sự kiện gần đây", "{n} recent events"),
    "n_readings": ("{n} số liệu", "{n} readings"),
    "no_events": ("Chưa có sự kiện.", "No events yet."),
    "updated": ("Cập nhật lúc {t}", "Updated {t}"),
    "agent_down": ("Không đọc được trạng thái của tác tử.", "No agent status available."),
    "st_ok": ("tốt", "ok"), "st_degraded": ("suy giảm", "degraded"), "st_failed": ("hỏng", "failed"),
    "st_starting": ("đang khởi động", "starting"), "st_connected": ("đã kết nối", "connected"),
    "st_connecting": ("đang kết nối", "connecting"), "st_disconnected": ("mất kết nối", "disconnected"),
    "st_stopped": ("đã dừng", "stopped"),
    "config": ("Cấu hình (đã che bí mật)", "Config (secrets masked)"),
    "doctor": ("Kiểm tra hệ thống", "Doctor"),
    "audit": ("Nhật ký thao tác", "Audit trail"),
    "raw_status": ("Chi tiết trạng thái", "Status details"),
    "who": ("Người làm", "Who"),
    "action": ("Thao tác", "Action"),
    "when": ("Thời điểm", "When"),
    "detail": ("Chi tiết", "Detail"),
    "target": ("Đối tượng", "Target"),
    "language": ("English", "Tiếng Việt"),
    "wd1": ("T2", "Mon"), "wd2": ("T3", "Tue"), "wd3": ("T4", "Wed"), "wd4": ("T5", "Thu"), "wd5": ("T6", "Fri"),
    "wd6": ("T7", "Sat"), "wd7": ("CN", "Sun"),
    "wdl1": ("Thứ Hai", "Monday"), "wdl2": ("Thứ Ba", "Tuesday"), "wdl3": ("Thứ Tư", "Wednesday"),
    "wdl4": ("Thứ Năm", "Thursday"), "wdl5": ("Thứ Sáu", "Friday"), "wdl6": ("Thứ Bảy", "Saturday"),
    "wdl7": ("Chủ Nhật", "Sunday"),
}

# Drivers' health details, by their English template (the `detail` of ctx.health): the Vietnamese line.
# tests/console/test_details.py fails when a template used in the source tree has no line here.
DETAILS: dict[str, str] = {
    "{error}": "gặp lỗi, đang chờ khởi động lại: {error}",
    "no WAN links configured": "chưa cấu hình đường WAN nào",
    "all WAN links are down": "tất cả đường WAN đều mất kết nối",
    "no WAN link selected yet": "chưa chọn được đường WAN",
    "link in use {link} is down, no healthy alternative":
        "đường đang dùng {link} đã mất kết nối, không có đường nào khác hoạt động",
    "on {link}": "đang dùng {link}",
    "balancing over {members} (agent on {link})": "chia tải qua {members} (tác tử dùng {link})",
    "{n} sources": "{n} nguồn dữ liệu",
    "{n} rules": "{n} quy tắc",
    "down: {down}": "mất kết nối: {down}",
    "stale: {stale}": "không có số liệu mới: {stale}",
    "down: {down}; stale: {stale}": "mất kết nối: {down}; không có số liệu mới: {stale}",
    "{n} camera(s)": "đang mở {n} camera",
    "offline: {cameras}": "mất kết nối: {cameras}",
    "{cameras}: {warning}": "{cameras}: đang dùng bộ phát hiện dự phòng ({warning})",
    "recording paused: free disk {free_kib} KiB under the floor of {floor_kib} KiB (storage.min_free_bytes) on {root}":
        "tạm dừng ghi hình: ổ đĩa chỉ còn trống {free_kib} KiB, dưới mức tối thiểu {floor_kib} KiB "
        "(storage.min_free_bytes) trên {root}",
    "connecting: {cameras}": "đang kết nối: {cameras}",
    "{n} camera(s) online": "{n} camera trực tuyến",
    "loading schedule": "đang nạp lịch phát",
    "{bulletins} bulletins, {zones} zones": "{bulletins} bản tin, {zones} vùng loa",
    "bulletin_dir {path}: {error}": "không dùng được thư mục bản tin (bulletin_dir) {path}: {error}",
    "listening on {address}:{port}": "đang mở cổng {address}:{port}",
    "{url}": "đang phục vụ tại {url}",
    # the uplink to the COC (agent/uplink.py)
    "{host}:{port}": "đang kết nối tới {host}:{port}",
    "connect failed: {error}": "không kết nối được: {error}",
    "no CONNACK from broker": "máy chủ MQTT không trả lời (không có CONNACK)",
    "broker refused: {reason}": "máy chủ MQTT từ chối: {reason}",
    "connection lost: {reason}": "mất kết nối: {reason}",
}


# Why a WAN link is up or down (drivers/network/linkjudge.py `reason(template, **params)`), by English template.
# tests/console/test_details.py fails when a reason template in the source tree has no line here.
REASONS: dict[str, str] = {
    "starting": "đang khởi động",
    "{lost_in_row} probes in a row unanswered on {targets_silent}/{targets} targets":
        "{lost_in_row} lần kiểm tra liên tiếp không có phản hồi trên {targets_silent}/{targets} địa chỉ kiểm tra",
    "degraded on {bad}/{targets} targets: {measured}":
        "chất lượng kém trên {bad}/{targets} địa chỉ kiểm tra: {measured}",
    "healthy on {good}/{targets} targets over {span_s}s (loss <= {worst_loss_pct}%)":
        "phản hồi tốt trên {good}/{targets} địa chỉ kiểm tra trong {span_s} giây (mất gói ≤ {worst_loss_pct}%)",
    "not healthy within {up_after_s}s of start": "chưa phản hồi tốt sau {up_after_s} giây kể từ lúc khởi động",
    "{lost_in_row} probes in a row unanswered": "{lost_in_row} lần kiểm tra liên tiếp không có phản hồi",
    "answering": "có phản hồi",
}


def _templated(lang: Lang, lines: Mapping[str, str], english: Any, template: Any, params: Any) -> str:
    """The Vietnamese line of a template with its parameters in; the English text when there is none."""
    english = str(english or "")
    line = lines.get(template) if lang == "vi" and isinstance(template, str) else None
    if line is None or not isinstance(params, dict):
        return english
    try:
        return line.format_map(params)
    except (KeyError, IndexError, ValueError, AttributeError):
        return english


def detail(lang: Lang, doc: Mapping[str, Any]) -> str:
    """A driver's health detail in the page's language; the English line for a template not in DETAILS."""
    return _templated(lang, DETAILS, doc.get("detail"), doc.get("detail_template"), doc.get("detail_params"))


def link_reason(lang: Lang, link: Mapping[str, Any]) -> str:
    """Why a WAN link (a row of the network family's link state) is up or down, in the page's language."""
    return _templated(lang, REASONS, link.get("reason"), link.get("reason_template"), link.get("reason_params"))


def translate(lang: Lang, key: str, **kw: object) -> str:
    pair = T.get(key)
    if pair is None:
        return key
    text = pair[0] if lang == "vi" else pair[1]
    return text.format(**kw) if kw else text


def fmt_dt(ts: float | None, tz: ZoneInfo, seconds: bool = False) -> str:
    if ts is None:
        return "–"
    return datetime.fromtimestamp(ts, tz).strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")


def fmt_date(d: datetime) -> str:
    return d.strftime("%d/%m/%Y")
