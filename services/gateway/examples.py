"""Request examples shown in the OpenAPI document (/docs), one per endpoint."""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, dict[str, Any]] = {
    "cameras": {
        "records": [
            {
                "camera_id": "CM-MUEANG-0001",
                "province_code": "TH-50",
                "change": "REGISTERED",
                "owner_agency": "เทศบาลนครเชียงใหม่",
                "name_th": "แยกข่วงสิงห์ ฝั่งขาเข้า",
                "name_en": "Khuang Sing intersection, inbound",
                "latitude": "18.8155",
                "longitude": "98.9836",
                "stream_url": "rtsp://10.50.1.17:554/stream1",
                "resolution_width": 1920,
                "resolution_height": 1080,
                "expected_fps": 25,
                "linked": "yes",
                "occurred_at": "2563-12-15 09:30",
            }
        ]
    },
    "heartbeats": {
        "records": [
            {
                "camera_id": "CM-MUEANG-0001",
                "province_code": "TH-50",
                "reachable": True,
                "fps": "24.8",
                "width": 1920,
                "height": 1080,
                "occurred_at": "2020-12-15T09:30:00+07:00",
            }
        ]
    },
    "selections": {
        "records": [
            {
                "province_code": "TH-50",
                "campaign_id": "moi-cctv-2563",
                "camera_id": "CM-MUEANG-0001",
                "action": "SELECT",
                "decided_by": "ผู้ว่าราชการจังหวัดเชียงใหม่",
                "occurred_at": "2020-12-20T10:00:00+07:00",
            }
        ]
    },
    "projects": {
        "records": [
            {
                "event_id": "0b6f1f8e-3c0a-4d52-9a55-5d1c2f6b7e10",
                "province_code": "TH-50",
                "project_id": "TH-50-2565-0007",
                "agency": "เทศบาลนครเชียงใหม่",
                "title": "ติดตั้งกล้อง CCTV ถนนนิมมานเหมินท์",
                "kind": "procurement",
                "fiscal_year": 2565,
                "budget": "480000.00",
                "submitted_at": "2020-12-20T14:00:00+07:00",
            }
        ]
    },
}

CSV_EXAMPLES: dict[str, str] = {
    "cameras": "camera_id,province_code,change,owner_agency,linked\n"
    "CM-MUEANG-0001,TH-50,REGISTERED,เทศบาลนครเชียงใหม่,no\n"
    "CM-MUEANG-0002,เชียงใหม่,REGISTERED,เทศบาลนครเชียงใหม่,yes\n",
    "heartbeats": "camera_id,province_code,reachable,fps\nCM-MUEANG-0001,TH-50,yes,25\n",
    "selections": "province_code,campaign_id,camera_id,action\n"
    "TH-50,moi-cctv-2563,CM-MUEANG-0001,SELECT\n",
    "projects": "province_code,project_id,agency,title,kind,fiscal_year,budget,submitted_at\n"
    'TH-50,TH-50-2565-0008,เทศบาลนครเชียงใหม่,กล้องตลาดวโรรส,other,2565,"12,000,000.00",'
    "2563-12-20 14:00\n",
}
